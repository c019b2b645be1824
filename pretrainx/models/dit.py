"""The DiT of Peebles & Xie (2023), "Scalable Diffusion Models with Transformers", in Flax Linen.

  DiT(patch_size=2, hidden_size=384, depth=12, num_heads=6, num_classes=1000)
      (x_BxHxWxC, t_B, labels=None, train=False) -> BxHxWxC

is DiT-S/2 (33M parameters on 32x32x4 latents); hidden 768 / 12 heads is DiT-B/2 (130M). The same
contract as the UNet: ``t_B`` is a float time on the 0..999 scale of the sinusoidal embedding,
``labels`` in [0, num_classes) with ``null_label`` = num_classes the null class of classifier-free
guidance, the output (eps or velocity; no learned sigma) has the input's shape, ``train`` is
accepted and unused (no dropout).

Shapes use suffixes: B batch, H/W image, C channels, T tokens (H/p * W/p), E hidden,
N heads, D head dim, M mlp hidden, P p*p*C_out.

Patchify is a p x p convolution with stride p; the 2-D sin-cos position embedding is fixed (a
constant, not a parameter). Each block is adaLN-Zero: shift/scale/gate for attention and MLP come
from Dense(silu(c)) with c = time embedding + label embedding, zero-initialised, so every block
starts as the identity and the zero-initialised final layer makes a fresh DiT output exactly 0.

Logical axis names (the UNet's, so the diffusion configs' rules cover them, plus the GPT's
'heads' / 'kv'):
  patch embedding     ('conv_h', 'conv_w', 'image_channels', 'embed'); bias ('embed',)
  time-embedding MLP  ('embed', 'mlp') then ('mlp', 'embed'); biases ('mlp',) and ('embed',)
  label embedding     ('classes', 'embed')        (num_classes + 1 rows: the last is the null class)
  attn q, k, v        ('embed', 'heads', 'kv'), biases ('heads', 'kv'); out ('heads', 'kv', 'embed')
  mlp                 ('embed', 'mlp'), ('mlp', 'embed');  adaLN modulation ('embed', 'mlp')
  final linear        ('embed', 'image_channels') (p*p*C_out wide: never shard)
  interval MLP        as the time-embedding MLP (only with ``interval_embedding=True``)
LayerNorms have no affine parameters (adaLN supplies them).

``interval_embedding=True`` adds the UNet's second time input (``interval=``, the shortcut step
size d or MeanFlow's t - r, on the 0..1000 scale): its own sinusoids and MLP, added to c as the
MeanFlow and shortcut DiTs do. Off by default, leaving the default DiT's parameters unchanged.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.errors import UserError
from pretrainx.models.transformer import Embed     # one-hot lookup: see unet.py's labels
from pretrainx.models.unet import check_interval, dense, time_mlp

# The DiT's 256 sinusoidal time features (before the MLP), computed by the UNet's function: the
# DiT puts cos before sin and divides the frequency exponent by 128, not 127; no matter.
FREQ_DIM = 256


def _xavier(names, in_axis=-2, out_axis=-1):
    # DiT initialises every Linear (and the flattened patch conv) with xavier_uniform.
    return nn.with_logical_partitioning(nn.initializers.variance_scaling(
        1.0, "fan_avg", "uniform", in_axis=in_axis, out_axis=out_axis), names)


def _normal(names):
    return nn.with_logical_partitioning(nn.initializers.normal(0.02), names)


def _zeros(names):
    return nn.with_logical_partitioning(nn.initializers.zeros_init(), names)


def sincos_pos_embed_2d(grid_h: int, grid_w: int, dim: int) -> np.ndarray:
    """The fixed (grid_h * grid_w, dim) table of MAE / DiT: token (i, j) (row-major) gets
    [sin(j w), cos(j w), sin(i w), cos(i w)] with w_k = 10000^(-k / (dim/4)), k < dim/4."""
    if dim % 4:
        raise UserError(f"the 2-D sin-cos embedding needs hidden_size % 4 == 0, got {dim}")
    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim // 4))
    rows, cols = np.meshgrid(np.arange(grid_h), np.arange(grid_w), indexing="ij")

    def embed_1d(pos):
        angles = pos.reshape(-1)[:, None] * omega[None, :]
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
    return np.concatenate([embed_1d(cols), embed_1d(rows)], axis=1).astype(np.float32)


def modulate(x_BxTxE, shift_BxE, scale_BxE):
    return x_BxTxE * (1 + scale_BxE[:, None]) + shift_BxE[:, None]


def layer_norm(name):
    # No affine parameters (adaLN modulates instead); statistics in float32.
    return nn.LayerNorm(epsilon=1e-6, use_bias=False, use_scale=False, dtype=jnp.float32,
                        name=name)


class DiTBlock(nn.Module):
    num_heads: int
    mlp_ratio: int = 4
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x_BxTxE, c_BxE):
        E = x_BxTxE.shape[-1]
        N, D = self.num_heads, E // self.num_heads
        mod_Bx6E = dense(6 * E, ("embed", "mlp"), zero_init=True, dtype=self.dtype,
                         name="adaLN_modulation")(nn.silu(c_BxE))
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = jnp.split(mod_Bx6E, 6, -1)

        h_BxTxE = modulate(layer_norm("norm1")(x_BxTxE), shift_msa, scale_msa).astype(self.dtype)
        # separate q, k, v (the DiT fuses them in one E x 3E Linear: the same parameter count)
        q_BxTxNxD, k_BxTxNxD, v_BxTxNxD = (nn.DenseGeneral(
            (N, D), dtype=self.dtype, kernel_init=_xavier(("embed", "heads", "kv")),
            bias_init=_zeros(("heads", "kv")), name=n)(h_BxTxE) for n in ("query", "key", "value"))
        y_BxTxNxD = jax.nn.dot_product_attention(q_BxTxNxD, k_BxTxNxD, v_BxTxNxD)
        attn_BxTxE = nn.DenseGeneral(E, axis=(-2, -1), dtype=self.dtype,
                                     kernel_init=_xavier(("heads", "kv", "embed")),
                                     bias_init=_zeros(("embed",)), name="out")(y_BxTxNxD)
        x_BxTxE = x_BxTxE + gate_msa[:, None] * attn_BxTxE

        h_BxTxE = modulate(layer_norm("norm2")(x_BxTxE), shift_mlp, scale_mlp).astype(self.dtype)
        h_BxTxM = nn.gelu(dense(self.mlp_ratio * E, ("embed", "mlp"), dtype=self.dtype,
                                name="fc")(h_BxTxE), approximate=True)
        mlp_BxTxE = dense(E, ("mlp", "embed"), dtype=self.dtype, name="proj")(h_BxTxM)
        return x_BxTxE + gate_mlp[:, None] * mlp_BxTxE


class DiT(nn.Module):
    patch_size: int = 2
    hidden_size: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: int = 4
    num_classes: int = 0          # 0: unconditional; else labels in [0, num_classes), null = K
    out_channels: int | None = None   # None: the input's channel count
    interval_embedding: bool = False  # True: also condition on interval= (see the docstring)
    dtype: jnp.dtype = jnp.float32

    @property
    def null_label(self) -> int:
        return self.num_classes

    @nn.compact
    def __call__(self, x_BxHxWxC, t_B, *, labels=None, train: bool = False, interval=None):
        del train                     # no dropout in the DiT
        check_interval(interval, self.interval_embedding, "DiT")
        B, H, W, C = x_BxHxWxC.shape
        p, E = self.patch_size, self.hidden_size
        if H % p or W % p or E % self.num_heads:
            raise UserError(f"DiT needs the image ({H}x{W}) divisible by patch_size {p} and "
                            f"hidden_size {E} by num_heads {self.num_heads}")
        out_ch = self.out_channels or C
        gh, gw = H // p, W // p

        # patch p x p, stride p; xavier over the flattened (p*p*C, E) kernel as the DiT
        x_BxhxwxE = nn.Conv(E, (p, p), strides=(p, p), padding="VALID", dtype=self.dtype,
                            kernel_init=_xavier(("conv_h", "conv_w", "image_channels", "embed"),
                                                in_axis=(0, 1, 2), out_axis=3),
                            bias_init=_zeros(("embed",)), name="patch_embed")(
                                x_BxHxWxC.astype(self.dtype))
        x_BxTxE = x_BxhxwxE.reshape(B, gh * gw, E) + sincos_pos_embed_2d(gh, gw, E).astype(
            self.dtype)

        normal = nn.initializers.normal(0.02)   # DiT's timestep MLP and label table
        c_BxE = time_mlp(t_B, FREQ_DIM, E, "t_embed", self.dtype, kernel_init=normal)
        if self.interval_embedding:
            c_BxE = c_BxE + time_mlp(interval, FREQ_DIM, E, "interval_embed", self.dtype,
                                     kernel_init=normal)
        if self.num_classes:
            if labels is None:        # unconditional use of a conditional model: the null class
                labels = jnp.full((B,), self.null_label, jnp.int32)
            c_BxE = c_BxE + Embed(self.num_classes + 1, E, dtype=self.dtype, name="label_embed",
                                  embedding_init=_normal(("classes", "embed")))(labels)

        for i in range(self.depth):
            x_BxTxE = DiTBlock(self.num_heads, self.mlp_ratio, self.dtype, name=f"block{i}")(
                x_BxTxE, c_BxE)

        shift_BxE, scale_BxE = jnp.split(dense(
            2 * E, ("embed", "mlp"), zero_init=True, dtype=self.dtype,
            name="final_adaLN")(nn.silu(c_BxE)), 2, -1)
        h_BxTxE = modulate(layer_norm("final_norm")(x_BxTxE), shift_BxE, scale_BxE)
        h_BxTxP = dense(p * p * out_ch, ("embed", "image_channels"),
                        zero_init=True, dtype=self.dtype,
                        name="final_linear")(h_BxTxE.astype(self.dtype))
        # unpatchify: (B, gh*gw, p*p*C) -> (B, gh, p, gw, p, C) -> (B, H, W, C)
        out = h_BxTxP.reshape(B, gh, gw, p, p, out_ch).transpose(0, 1, 3, 2, 4, 5)
        return out.reshape(B, H, W, out_ch).astype(jnp.float32)
