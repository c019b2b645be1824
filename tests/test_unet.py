"""The DDPM UNet: Ho et al.'s CIFAR-10 parameter count, shapes, conditioning, logical names."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretrainx.models.unet import UNet, num_norm_groups

# rbg keys: XLA compiles threefry's bit mixing once per parameter, ~10x slower on CPU.
KEY = jax.random.key(0, impl="unsafe_rbg")
TINY = dict(ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.1)


def _count(tree):
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nn.meta.unbox(tree)))


def test_cifar10_unet_has_ho_et_al_parameter_count():
    model = UNet(ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,),
                 dropout=0.1)
    shapes = jax.eval_shape(lambda: model.init(KEY, jnp.zeros((1, 32, 32, 3)), jnp.zeros((1,))))
    count = _count(shapes["params"])
    assert abs(count / 35.7e6 - 1) < 0.02, count


def test_group_counts_divide_channels():
    assert num_norm_groups(128) == 32 and num_norm_groups(256) == 32
    for c in (1, 3, 8, 16, 24, 48):
        g = num_norm_groups(c)
        assert c % g == 0 and 1 <= g <= 32


def test_tiny_conditional_unet_shapes_names_and_label_effect():
    model = UNet(num_classes=10, **TINY)
    x = jax.random.normal(jax.random.key(1), (4, 8, 8, 1))
    t = jnp.array([0.0, 10.0, 500.0, 999.0])
    labels = jnp.array([0, 1, 2, 10])             # 10 is the null class
    boxed = jax.eval_shape(lambda: model.init(KEY, x, t, labels=labels))["params"]

    # every leaf carries logical names, one per dimension
    leaves = jax.tree.leaves(boxed, is_leaf=lambda v: isinstance(v, nn.Partitioned))
    assert leaves and all(isinstance(v, nn.Partitioned) for v in leaves)
    assert all(len(v.names) == len(v.value.shape) for v in leaves)
    names = {n for v in leaves for n in v.names}
    assert names <= {"conv_h", "conv_w", "conv_in", "conv_out", "image_channels", "embed", "mlp",
                     "classes", "norm"}
    assert boxed["label_embed"]["embedding"].names == ("classes", "embed")

    # Zero-initialised residual branches make a fresh net ignore t and labels: randomise them all.
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda p: jnp.asarray(0.3 * rng.standard_normal(p.shape), p.dtype),
                          nn.meta.unbox(boxed))

    @jax.jit
    def forward(params, labels, rng):
        eval_out = model.apply({"params": params}, x, t, labels=labels)
        train_out = model.apply({"params": params}, x, t, labels=labels, train=True,
                                rngs={"dropout": rng})
        return eval_out, train_out

    out_a, train_a = forward(params, labels, jax.random.key(2))
    out_b, _ = forward(params, jnp.array([3, 1, 2, 10]), jax.random.key(2))
    assert out_a.shape == x.shape and out_a.dtype == jnp.float32
    assert not np.allclose(out_a[0], out_b[0]) and np.allclose(out_a[1:], out_b[1:], atol=1e-5)
    assert not np.allclose(out_a, train_a)        # dropout is live only when training


@pytest.mark.slow      # 15-35 s on 2 cores: out of the -m 'not slow' set's 10 min
def test_bf16_compute_matches_float32_to_bf16_rounding():
    """model.dtype=bfloat16 (the GPU option for the diffusion recipes): float32 parameters and
    output, and the same function as float32 compute up to bf16 rounding."""
    model32, model16 = UNet(num_classes=10, **TINY), UNet(num_classes=10, dtype=jnp.bfloat16, **TINY)
    x = jax.random.normal(jax.random.key(2), (4, 8, 8, 1))
    t, labels = jnp.array([3.0, 100.0, 400.0, 900.0]), jnp.array([0, 4, 9, 10])
    rng = np.random.default_rng(1)
    params = jax.tree.map(lambda p: jnp.asarray(0.3 * rng.standard_normal(p.shape), p.dtype),
                          nn.meta.unbox(jax.eval_shape(
                              lambda: model32.init(KEY, x, t, labels=labels))["params"]))
    shapes16 = jax.eval_shape(lambda: model16.init(KEY, x, t, labels=labels))["params"]
    assert {v.dtype for v in jax.tree.leaves(nn.meta.unbox(shapes16))} == {jnp.dtype("float32")}
    out32 = model32.apply({"params": params}, x, t, labels=labels)
    out16 = model16.apply({"params": params}, x, t, labels=labels)
    assert out16.dtype == jnp.float32
    rel = float(jnp.linalg.norm(out16 - out32) / jnp.linalg.norm(out32))
    assert 1e-4 < rel < 3e-2, rel      # bf16 rounding: visible, and small
