"""The DDPM UNet of Ho et al. (2020), "Denoising Diffusion Probabilistic Models", in Flax Linen.

  UNet(ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,), dropout=0.1)
      (x_BxHxWxC, t_B, labels=None, train=False) -> BxHxWxC

is the 35.7M-parameter CIFAR-10 model. ``t_B`` is a float "time" fed to a sinusoidal embedding with
the frequencies of the original (built for integer steps 0..999); continuous-time objectives scale
their t in [0, 1] by 1000 so the same frequencies stay meaningful.

Every parameter carries logical axis names (``nn.with_logical_partitioning``):
  conv kernels        ('conv_h', 'conv_w', 'conv_in', 'conv_out'); biases ('conv_out',)
  1x1 / attention     ('conv_in', 'conv_out')
  first / last conv   'image_channels' in place of 'conv_in' / 'conv_out' (3 or 1 wide: never shard)
  time-embedding MLP  ('embed', 'mlp') then ('mlp', 'embed'); biases ('mlp',) and ('embed',)
  time -> block proj  ('embed', 'conv_out')
  interval MLP        as the time-embedding MLP (only with ``interval_embedding=True``)
  label embedding     ('classes', 'embed')        (num_classes + 1 rows: the last is the null class)
  GroupNorm scale/bias ('norm',)
so 'conv_out' and 'mlp' can map to "tensor", 'conv_in' and 'embed' to "fsdp", the rest to None.

Few-step objectives condition on a second time, the length of the interval one output spans (the
shortcut model's step size d, MeanFlow's t - r): ``UNet(..., interval_embedding=True)`` then takes
``interval=`` (B,) on the same 0..1000 scale as ``t``, embeds it with its own sinusoids and MLP and
adds it to the time embedding (as both papers' DiTs do). Off by default: the default model's
parameters, and so every existing checkpoint and number, are unchanged.
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from pretrainx.errors import UserError
from pretrainx.models.transformer import Embed

CONV_KERNEL = ("conv_h", "conv_w", "conv_in", "conv_out")


def _fan_avg_uniform():
    # Ho et al. initialise every layer with variance_scaling(1, "fan_avg", "uniform").
    return nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")


def _zero():
    # The last layer of each residual branch starts (near) zero, as in the original (scale 1e-10):
    # every block is the identity at init, which keeps the deep net's output well-scaled.
    return nn.initializers.zeros_init()


def conv(features, names, *, kernel=3, stride=1, zero_init=False, dtype=jnp.float32, name=None):
    pad = kernel // 2
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                   padding=((pad, pad), (pad, pad)), dtype=dtype, name=name,
                   kernel_init=nn.with_logical_partitioning(
                       _zero() if zero_init else _fan_avg_uniform(), names),
                   bias_init=nn.with_logical_partitioning(_zero(), (names[-1],)))


def dense(features, names, *, zero_init=False, kernel_init=None, dtype=jnp.float32, name=None):
    """Dense with logical names; the kernel starts fan-avg uniform, zero, or ``kernel_init``."""
    kernel_init = kernel_init or (_zero() if zero_init else _fan_avg_uniform())
    return nn.Dense(features, dtype=dtype, name=name,
                    kernel_init=nn.with_logical_partitioning(kernel_init, names),
                    bias_init=nn.with_logical_partitioning(_zero(), (names[-1],)))


def num_norm_groups(channels: int, max_groups: int = 32) -> int:
    """32 groups as in the paper, fewer for thin layers: at least 4 channels a group, dividing C."""
    groups = max(1, min(max_groups, channels // 4))
    while channels % groups:
        groups -= 1
    return groups


def group_norm(channels: int, max_groups: int, name=None):
    # Statistics in float32 whatever the compute dtype: bf16 variances are too coarse.
    return nn.GroupNorm(num_groups=num_norm_groups(channels, max_groups), name=name,
                        dtype=jnp.float32,
                        scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(),
                                                                ("norm",)),
                        bias_init=nn.with_logical_partitioning(_zero(), ("norm",)))


def time_mlp(t, features: int, out_dim: int, prefix: str, dtype, kernel_init=None):
    """Sinusoids of ``t`` (``features`` wide) -> Dense -> silu -> Dense: the DDPM time MLP, named
    ``{prefix}0`` / ``{prefix}1``."""
    h = dense(out_dim, ("embed", "mlp"), kernel_init=kernel_init, dtype=dtype,
              name=f"{prefix}0")(timestep_embedding(t, features))
    return dense(out_dim, ("mlp", "embed"), kernel_init=kernel_init, dtype=dtype,
                 name=f"{prefix}1")(nn.silu(h))


def check_interval(interval, enabled: bool, model: str):
    """One-line errors for a second time given to a model built without it, or missing."""
    if enabled and interval is None:
        raise UserError(f"{model} was built with interval_embedding=True: pass interval= (B,)")
    if not enabled and interval is not None:
        raise UserError(f"{model} got interval= but was built with interval_embedding=False")


def timestep_embedding(t, dim: int, max_period: float = 10000.0):
    """Sinusoidal embedding of (float) time steps, (B,) -> (B, dim), as in the Transformer."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / (half - 1))
    args = t.astype(jnp.float32)[:, None] * freqs[None, :]
    emb = jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)
    return jnp.pad(emb, ((0, 0), (0, dim % 2)))


class ResBlock(nn.Module):
    out_ch: int
    dropout: float
    norm_groups: int = 32
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, temb, train: bool):
        in_ch = x.shape[-1]
        h = nn.silu(group_norm(in_ch, self.norm_groups, name="norm1")(x)).astype(self.dtype)
        h = conv(self.out_ch, CONV_KERNEL, dtype=self.dtype, name="conv1")(h)
        h = h + dense(self.out_ch, ("embed", "conv_out"), dtype=self.dtype,
                      name="temb_proj")(nn.silu(temb))[:, None, None, :]
        h = nn.silu(group_norm(self.out_ch, self.norm_groups, name="norm2")(h)).astype(self.dtype)
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        h = conv(self.out_ch, CONV_KERNEL, zero_init=True, dtype=self.dtype, name="conv2")(h)
        if in_ch != self.out_ch:      # the paper's "nin_shortcut": a 1x1 projection
            x = dense(self.out_ch, ("conv_in", "conv_out"), dtype=self.dtype, name="skip")(x)
        return x + h


class AttnBlock(nn.Module):
    """Self-attention over the H*W positions (single head in the paper; num_heads splits C)."""
    num_heads: int = 1
    norm_groups: int = 32
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, hgt, wid, c = x.shape
        h = group_norm(c, self.norm_groups, name="norm")(x).astype(self.dtype)
        qkv = dense(3 * c, ("conv_in", "conv_out"), dtype=self.dtype, name="qkv")(h)
        q, k, v = jnp.split(qkv.reshape(b, hgt * wid, 3 * self.num_heads, c // self.num_heads),
                            3, axis=2)
        out = jax.nn.dot_product_attention(q, k, v)           # (B, HW, heads, C/heads)
        out = out.reshape(b, hgt, wid, c)
        return x + dense(c, ("conv_in", "conv_out"), zero_init=True, dtype=self.dtype,
                         name="proj_out")(out)


class UNet(nn.Module):
    ch: int = 128
    ch_mult: Sequence[int] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: Sequence[int] = (16,)
    dropout: float = 0.1
    num_heads: int = 1
    num_classes: int = 0          # 0: unconditional; else labels in [0, num_classes), null = K
    out_channels: int | None = None   # None: the input's channel count
    norm_groups: int = 32
    interval_embedding: bool = False  # True: also condition on interval= (see the docstring)
    dtype: jnp.dtype = jnp.float32

    @property
    def null_label(self) -> int:
        return self.num_classes

    @nn.compact
    def __call__(self, x, t, *, labels=None, train: bool = False, interval=None):
        check_interval(interval, self.interval_embedding, "UNet")
        out_ch = self.out_channels or x.shape[-1]
        kw = dict(norm_groups=self.norm_groups, dtype=self.dtype)
        temb_dim = 4 * self.ch
        temb = time_mlp(t, self.ch, temb_dim, "temb_dense", self.dtype)
        if self.interval_embedding:
            temb = temb + time_mlp(interval, self.ch, temb_dim, "interval_dense", self.dtype)
        if self.num_classes:
            if labels is None:        # unconditional use of a conditional model: the null class
                labels = jnp.full((x.shape[0],), self.null_label, jnp.int32)
            # One-hot lookup (transformer.Embed): a batch of labels adding into ~11 rows is the
            # scatter-add that serialises on a GPU.
            label_table = Embed(self.num_classes + 1, temb_dim, name="label_embed",
                                   embedding_init=nn.with_logical_partitioning(
                                       nn.initializers.normal(1.0), ("classes", "embed")))
            temb = temb + label_table(labels).astype(temb.dtype)

        h = conv(self.ch, ("conv_h", "conv_w", "image_channels", "conv_out"), dtype=self.dtype,
                 name="conv_in")(x.astype(self.dtype))
        skips = [h]
        for level, mult in enumerate(self.ch_mult):
            for i in range(self.num_res_blocks):
                h = ResBlock(self.ch * mult, self.dropout, name=f"down{level}_res{i}", **kw)(
                    h, temb, train)
                if h.shape[1] in self.attn_resolutions:
                    h = AttnBlock(self.num_heads, name=f"down{level}_attn{i}", **kw)(h)
                skips.append(h)
            if level != len(self.ch_mult) - 1:
                h = conv(h.shape[-1], CONV_KERNEL, stride=2, dtype=self.dtype,
                         name=f"down{level}_downsample")(h)
                skips.append(h)

        h = ResBlock(h.shape[-1], self.dropout, name="mid_res0", **kw)(h, temb, train)
        h = AttnBlock(self.num_heads, name="mid_attn", **kw)(h)
        h = ResBlock(h.shape[-1], self.dropout, name="mid_res1", **kw)(h, temb, train)

        for level in reversed(range(len(self.ch_mult))):
            for i in range(self.num_res_blocks + 1):
                h = jnp.concatenate([h, skips.pop()], axis=-1)
                h = ResBlock(self.ch * self.ch_mult[level], self.dropout,
                             name=f"up{level}_res{i}", **kw)(h, temb, train)
                if h.shape[1] in self.attn_resolutions:
                    h = AttnBlock(self.num_heads, name=f"up{level}_attn{i}", **kw)(h)
            if level != 0:
                b, hgt, wid, c = h.shape
                h = jax.image.resize(h, (b, 2 * hgt, 2 * wid, c), "nearest")
                # odd sizes (28 -> 14 -> 7) come back one short of their skip: crop to match
                target = skips[-1].shape
                h = h[:, :target[1], :target[2]]
                h = conv(c, CONV_KERNEL, dtype=self.dtype, name=f"up{level}_upsample")(h)
        assert not skips

        h = nn.silu(group_norm(h.shape[-1], self.norm_groups, name="norm_out")(h)).astype(
            self.dtype)
        h = conv(out_ch, ("conv_h", "conv_w", "conv_in", "image_channels"), zero_init=True,
                 dtype=self.dtype, name="conv_out")(h)
        return h.astype(jnp.float32)
