"""The MLP and the transformer block shared by GPT, BERT and T5.

A block is self-attention, then (in a decoder over an encoder) cross-attention, then the MLP,
each a residual branch. Where the norm goes is the one switch between the families:

  "pre"  (GPT-2, T5, pre-LN BERT):  x = x + f(norm(x))     the stack ends with a final norm
  "post" (BERT as published):        x = norm(x + f(x))     the embeddings are normalised instead

Parameter names: ``attn``, ``ln_1``, ``cross_attn``, ``ln_cross``, ``mlp`` (``fc``, ``gate``,
``proj``), ``ln_2``.
"""
from __future__ import annotations

import flax.linen as nn
import jax

from pretrainx.models.attention import Attention
from pretrainx.models.transformer import (TransformerConfig, init_std, norm, normal_init,
                                          residual_out_init, zeros_init)

ACTIVATION_FNS = {
    "gelu_tanh": lambda x: nn.gelu(x, approximate=True),    # GPT-2, T5 v1.1 ("gelu_new")
    "gelu": lambda x: nn.gelu(x, approximate=False),        # BERT (erf)
    "relu": nn.relu,                                         # T5 v1.0
    "silu": nn.silu,                                         # Llama's SwiGLU (with mlp_gated)
    "relu2": lambda x: nn.relu(x) ** 2,                      # ReLU squared (So et al. 2021, Primer)
}


class MLP(nn.Module):
    """proj(act(fc(x))), or with ``mlp_gated`` proj(act(fc(x)) * gate(x)) (T5 v1.1's gated-GELU,
    Llama's SwiGLU with "silu": Shazeer 2020 "GLU variants improve transformer"). In Hugging
    Face's Llama names fc is ``gate_proj``, gate is ``up_proj`` and proj is ``down_proj``."""
    config: TransformerConfig

    @nn.compact
    def __call__(self, x_BxTxE, train: bool):
        cfg = self.config
        M = cfg.hidden_dim
        dense_in = lambda name: nn.Dense(
            M, use_bias=cfg.use_bias, dtype=cfg.compute_dtype, dot_general=cfg.dense_dot_general,
            kernel_init=normal_init(init_std(cfg, "mlp_in"), ("embed", "mlp")),
            bias_init=zeros_init(("mlp",)), name=name)
        h_BxTxM = ACTIVATION_FNS[cfg.mlp_activation](dense_in("fc")(x_BxTxE))
        if cfg.mlp_gated:
            h_BxTxM = h_BxTxM * dense_in("gate")(x_BxTxE)
        out_BxTxE = nn.Dense(cfg.embed_dim, use_bias=cfg.use_bias, dtype=cfg.compute_dtype,
                             dot_general=cfg.dense_dot_general,
                             kernel_init=residual_out_init(cfg, "mlp_out", ("mlp", "embed")),
                             bias_init=zeros_init(("embed",)), name="proj")(h_BxTxM)
        return nn.Dropout(cfg.dropout)(out_BxTxE, deterministic=not train)


class Block(nn.Module):
    """One transformer layer (see the module docstring for the norm placement).

    ``mask``: the self-attention mask (None: causal); ``bias``: an additive attention bias (T5's
    relative positions); ``encoded`` (B, S, E) and ``cross_mask`` (B, 1, T, S): the encoder output
    a decoder block (``cross_attention=True``) attends to. All positional, for ``nn.remat``.
    """
    config: TransformerConfig
    decode: bool = False
    cross_attention: bool = False

    @nn.compact
    def __call__(self, x_BxTxE, positions_BxT, mask, train: bool, input_mask=None, bias=None,
                 encoded=None, cross_mask=None):
        cfg = self.config
        pre = cfg.norm_position == "pre"

        def residual(x, f, norm_name):
            if pre:
                return x + f(norm(cfg, norm_name)(x))
            return norm(cfg, norm_name)(x + f(x))

        attn = Attention(cfg, self.decode, name="attn")
        x_BxTxE = residual(x_BxTxE, lambda h: attn(h, positions_BxT, mask, train, input_mask,
                                                   bias), "ln_1")
        if self.cross_attention:
            cross = Attention(cfg, name="cross_attn")
            x_BxTxE = residual(x_BxTxE, lambda h: cross(h, positions_BxT, cross_mask, train,
                                                        None, None, encoded), "ln_cross")
        mlp = MLP(cfg, name="mlp")
        return residual(x_BxTxE, lambda h: mlp(h, train), "ln_2")


def stack(cfg: TransformerConfig, count: int, *, decode: bool = False,
          cross_attention: bool = False, prefix: str = "h"):
    """``count`` blocks named ``{prefix}_0`` .. (call inside a compact module), rematerialised
    in the backward pass when ``cfg.remat``."""
    block_cls = nn.remat(Block, static_argnums=(4,)) if cfg.remat else Block
    return [block_cls(cfg, decode, cross_attention, name=f"{prefix}_{i}") for i in range(count)]


def run_stack(blocks, x_BxTxE, positions_BxT, mask, train: bool, input_mask=None, bias=None,
              encoded=None, cross_mask=None) -> jax.Array:
    for block in blocks:
        x_BxTxE = block(x_BxTxE, positions_BxT, mask, train, input_mask, bias, encoded, cross_mask)
    return x_BxTxE
