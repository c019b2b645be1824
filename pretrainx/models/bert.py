"""BERT (Devlin et al. 2019): a bidirectional encoder with learned positions, optional token-type
embeddings, the shared blocks (post-LN as published, or pre-LN by ``norm_position="pre"``), an MLM
head tied to the token embeddings and a pooled [CLS] output.

Parameter names, and their Hugging Face ``BertForPreTraining`` counterparts (for an importer):

  wte/embedding ('vocab','embed')             embeddings.word_embeddings
  wpe/embedding ('length','embed')            embeddings.position_embeddings
  wtt/embedding ('token_types','embed')       embeddings.token_type_embeddings
  ln_emb (post-LN only)                       embeddings.LayerNorm
  h_i/attn/{query,key,value,out}              encoder.layer.i.attention.{self.*, output.dense}
  h_i/ln_1, h_i/mlp/fc, h_i/mlp/proj, h_i/ln_2   ...attention.output.LayerNorm, intermediate.dense,
                                              output.dense, output.LayerNorm
  ln_f (pre-LN only)                          (none: pre-LN is not in the paper)
  pooler ('embed','embed_out')                pooler.dense
  mlm_transform, mlm_ln, mlm_bias ('vocab',)  cls.predictions.transform.{dense, LayerNorm}, .bias

Our kernels are (in, out) where PyTorch's are (out, in), and attention kernels are split by head.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from pretrainx.errors import UserError
from pretrainx.models.blocks import ACTIVATION_FNS, run_stack, stack
from pretrainx.models.transformer import (TransformerConfig, attention_mask, embed, init_std, norm,
                                          normal_init, zeros_init)

OUTPUTS = ("mlm", "features", "pooled", "all")


class Bert(nn.Module):
    """Returns, by ``output``: "mlm" float32 logits B,T,V; "features" the final hidden states
    B,T,E; "pooled" tanh(dense(h[CLS])) B,E (the [CLS] token is the row's first); "all" the pair
    (logits, pooled), which creates every parameter (BERT's published count includes the pooler).

    ``segment_ids`` keep packed documents apart, ``input_mask`` hides padding keys, ``positions``
    restart per packed document; ``token_types`` (B,T) in [0, type_vocab_size) mark sentence A/B.
    """
    config: TransformerConfig

    @nn.compact
    def __call__(self, tokens_BxT, *, token_types=None, positions=None, segment_ids=None,
                 input_mask=None, train: bool = False, output: str = "mlm"):
        cfg = self.config
        if output not in OUTPUTS:
            raise UserError(f"Bert output must be one of {OUTPUTS}, got {output!r}")
        B, T = tokens_BxT.shape
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(T, dtype=jnp.int32), (B, T))
        mask = attention_mask("bidirectional", T, segment_ids=segment_ids, input_mask=input_mask)

        std = init_std(cfg, "embed")
        wte = embed(cfg, cfg.vocab_size, std, ("vocab", "embed"), "wte")
        x_BxTxE = wte(tokens_BxT) + embed(cfg, cfg.max_len, std, ("length", "embed"), "wpe")(positions)
        if cfg.type_vocab_size:
            types = jnp.zeros_like(tokens_BxT) if token_types is None else token_types
            x_BxTxE = x_BxTxE + embed(cfg, cfg.type_vocab_size, std, ("token_types", "embed"),
                                      "wtt")(types)
        if cfg.norm_position == "post":
            x_BxTxE = norm(cfg, "ln_emb")(x_BxTxE)
        x_BxTxE = nn.Dropout(cfg.dropout)(x_BxTxE, deterministic=not train)
        x_BxTxE = run_stack(stack(cfg, cfg.num_layers), x_BxTxE, positions, mask, train)
        if cfg.norm_position == "pre":
            x_BxTxE = norm(cfg, "ln_f")(x_BxTxE)
        if output == "features":
            return x_BxTxE.astype(jnp.float32)

        pooled_BxE = None
        if output in ("pooled", "all"):
            pooled_BxE = jnp.tanh(self._dense(cfg.embed_dim, "pooler")(x_BxTxE[:, 0]))
            if output == "pooled":
                return pooled_BxE.astype(jnp.float32)
        logits_BxTxV = self._mlm_head(x_BxTxE, wte)
        return logits_BxTxV if output == "mlm" else (logits_BxTxV, pooled_BxE.astype(jnp.float32))

    def _dense(self, features: int, name: str, names=("embed", "embed_out")):
        cfg = self.config
        return nn.Dense(features, dtype=cfg.compute_dtype, dot_general=cfg.dense_dot_general,
                        kernel_init=normal_init(init_std(cfg, "head"), names),
                        bias_init=zeros_init((names[1],)), name=name)

    def _mlm_head(self, x_BxTxE, wte) -> jax.Array:
        """BERT's prediction head: dense + activation + LayerNorm, then the token embeddings
        (transposed) and an output bias."""
        cfg = self.config
        h_BxTxE = ACTIVATION_FNS[cfg.mlp_activation](self._dense(cfg.embed_dim, "mlm_transform")(x_BxTxE))
        h_BxTxE = nn.LayerNorm(epsilon=cfg.norm_eps, dtype=cfg.compute_dtype,
                               scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(),
                                                                       ("embed",)),
                               bias_init=zeros_init(("embed",)), name="mlm_ln")(h_BxTxE)
        if cfg.tie_embeddings:
            logits_BxTxV = wte.attend(h_BxTxE)
            bias_V = self.param("mlm_bias", zeros_init(("vocab",)), (cfg.vocab_size,), jnp.float32)
            logits_BxTxV = logits_BxTxV.astype(jnp.float32) + bias_V
        else:
            logits_BxTxV = self._dense(cfg.vocab_size, "lm_head", ("embed", "vocab"))(h_BxTxE)
        return cfg.output_logits(logits_BxTxV)
