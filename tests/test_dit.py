"""The DiT: shapes and conditioning, adaLN-Zero at init, the paper's DiT-S/2 and DiT-B/2 parameter
counts, logical names under the config's rules, the fixed 2-D sin-cos position embedding."""
import math
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from pretrainx.config import load as config_lib
from pretrainx.core import sharding as sharding_lib
from pretrainx.models.dit import DiT, sincos_pos_embed_2d
from pretrainx.models.unet import UNet
from pretrainx.objectives.image_common import build_model

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
# rbg keys: XLA compiles threefry's bit mixing once per parameter, ~10x slower on CPU.
KEY = jax.random.key(0, impl="unsafe_rbg")
TINY = dict(patch_size=2, hidden_size=32, depth=2, num_heads=2)


def _count(tree):
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nn.meta.unbox(tree)))


def _inputs(batch=4, size=8):
    x = jax.random.normal(jax.random.key(1), (batch, size, size, 1))
    return x, jnp.linspace(0.0, 999.0, batch)


@pytest.mark.parametrize("num_classes", [0, 10])
def test_output_has_the_input_shape_and_follows_t_and_labels(num_classes):
    model = DiT(num_classes=num_classes, **TINY)
    x, t = _inputs()
    labels = jnp.array([0, 1, 2, 10]) if num_classes else None       # 10: the null class
    params = nn.meta.unbox(jax.eval_shape(lambda: model.init(KEY, x, t, labels=labels))["params"])
    # adaLN-Zero makes a fresh DiT output 0 whatever its inputs: randomise every parameter.
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda p: jnp.asarray(0.3 * rng.standard_normal(p.shape), p.dtype),
                          params)
    forward = jax.jit(lambda p, x, t, labels: model.apply({"params": p}, x, t, labels=labels))
    out = forward(params, x, t, labels)
    assert out.shape == x.shape and out.dtype == jnp.float32
    assert not np.allclose(out, forward(params, x, t[::-1], labels))
    if num_classes:
        out_b = forward(params, x, t, jnp.array([3, 1, 2, 10]))
        assert not np.allclose(out[0], out_b[0]) and np.allclose(out[1:], out_b[1:], atol=1e-5)
        # no labels: every row is the null class
        null = forward(params, x, t, jnp.full((4,), model.null_label))
        np.testing.assert_array_equal(forward(params, x, t, None), null)
    else:
        assert "label_embed" not in params
    # bf16 compute keeps fp32 parameters and returns fp32
    bf16 = DiT(num_classes=num_classes, dtype=jnp.bfloat16, **TINY)
    shapes = jax.eval_shape(lambda: bf16.init(KEY, x, t, labels=labels))["params"]
    assert {v.dtype for v in jax.tree.leaves(nn.meta.unbox(shapes))} == {jnp.dtype("float32")}
    out = jax.eval_shape(lambda: bf16.apply({"params": params}, x, t, labels=labels))
    assert out.dtype == jnp.float32 and out.shape == x.shape


def test_adaln_zero_blocks_start_as_identity_and_the_output_as_zero():
    model = DiT(num_classes=10, **TINY)
    x, t = _inputs()
    labels = jnp.array([0, 3, 9, 10])
    params = nn.meta.unbox(jax.jit(lambda: model.init(KEY, x, t, labels=labels))()["params"])
    out, state = jax.jit(lambda p: model.apply({"params": p}, x, t, labels=labels,
                                               capture_intermediates=True,
                                               mutable=["intermediates"]))(params)
    assert np.array_equal(out, np.zeros_like(out))            # exactly 0: zero final layer
    inter = state["intermediates"]
    patches = inter["patch_embed"]["__call__"][0]             # B x 4 x 4 x E
    tokens = patches.reshape(4, 16, -1) + sincos_pos_embed_2d(4, 4, 32)
    assert np.abs(tokens).max() > 0.1
    for i in range(TINY["depth"]):
        np.testing.assert_array_equal(inter[f"block{i}"]["__call__"][0], tokens)


def _paper_count(hidden, depth, heads):
    model = DiT(patch_size=2, hidden_size=hidden, depth=depth, num_heads=heads, num_classes=1000)
    shapes = jax.eval_shape(lambda: model.init(KEY, jnp.zeros((1, 32, 32, 4)), jnp.zeros((1,)),
                                               labels=jnp.zeros((1,), jnp.int32)))
    return _count(shapes["params"])


@pytest.mark.parametrize("name,hidden,heads,paper", [("DiT-S/2", 384, 6, 33e6),
                                                     ("DiT-B/2", 768, 12, 130e6)])
def test_paper_parameter_counts(name, hidden, heads, paper):
    # 256x256 images -> 32x32x4 latents, 1000 ImageNet classes (+ the null class), depth 12.
    count = _paper_count(hidden, 12, heads)
    assert abs(count / paper - 1) < 0.02, (name, count)


def test_every_param_has_logical_names_that_map_to_the_mesh():
    c = config_lib.load(os.path.join(ROOT, "configs/diffusion/fashion_mnist_dit.py:cond"))
    model = build_model(c.model)
    assert isinstance(model, DiT) and model.num_classes == 10
    boxed = jax.eval_shape(lambda: model.init(KEY, jnp.zeros((1, 28, 28, 1)), jnp.zeros((1,)),
                                              labels=jnp.zeros((1,), jnp.int32)))["params"]
    leaves = jax.tree.leaves(boxed, is_leaf=lambda v: isinstance(v, nn.Partitioned))
    assert leaves and all(isinstance(v, nn.Partitioned) for v in leaves)
    assert all(len(v.names) == len(v.value.shape) for v in leaves)
    rules = sharding_lib.rules(c.sharding)
    assert {n for v in leaves for n in v.names} <= {logical for logical, _ in rules}

    mesh = sharding_lib.make_mesh(dict(data=2, fsdp=2, tensor=2))
    shardings = sharding_lib.logical_shardings(boxed, mesh, rules)
    for value, sharding in zip(jax.tree.leaves(nn.meta.unbox(boxed)), jax.tree.leaves(shardings)):
        for size, axes in zip(value.shape, tuple(sharding.spec) + (None,) * value.ndim):
            axes = () if axes is None else (axes,) if isinstance(axes, str) else axes
            assert size % math.prod(mesh.shape[a] for a in axes) == 0, (value.shape, sharding)
    block = shardings["block0"]
    assert block["query"]["kernel"].spec == P("fsdp", "tensor", None)
    assert block["out"]["kernel"].spec == P("tensor", None, "fsdp")
    assert block["fc"]["kernel"].spec == P("fsdp", "tensor")

    # the backbone registry: the UNet recipes name "unet" (the base shows it), an error for unknown names
    unet_config = config_lib.load(os.path.join(ROOT, "configs/diffusion/fashion_mnist_ddpm.py"))
    assert unet_config.model.name == "unet" and isinstance(build_model(unet_config.model), UNet)
    c.model.name = "vit"
    with pytest.raises(ValueError, match="image backbones"):
        build_model(c.model)


def test_2d_sincos_position_embedding_entries():
    # dim 8: w = (1, 1/100); token (i, j) = [sin j w, cos j w, sin i w, cos i w]
    table = sincos_pos_embed_2d(3, 3, 8)
    assert table.shape == (9, 8) and table.dtype == np.float32
    np.testing.assert_allclose(table[0], [0, 0, 1, 1, 0, 0, 1, 1], atol=1e-7)
    row1_col2 = [math.sin(2), math.sin(0.02), math.cos(2), math.cos(0.02),
                 math.sin(1), math.sin(0.01), math.cos(1), math.cos(0.01)]
    np.testing.assert_allclose(table[1 * 3 + 2], row1_col2, rtol=1e-6)
    # not square: 2 rows x 3 columns, row-major as the patch tokens; dim 16: w_k = 10000^(-k/4)
    table = sincos_pos_embed_2d(2, 3, 16)
    assert table.shape == (6, 16)
    np.testing.assert_allclose(table[5, 1], math.sin(2 * 10000 ** -0.25), rtol=1e-6)   # col 2
    np.testing.assert_allclose(table[5, 8 + 4 + 3], math.cos(1 * 10000 ** -0.75), rtol=1e-6)
    with pytest.raises(ValueError, match="% 4"):
        sincos_pos_embed_2d(2, 2, 6)
