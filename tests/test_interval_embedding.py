"""The backbones' optional interval input (the few-step objectives' step size d or t - r): off by
default with the parameter tree and values of before, on it adds only its own MLP and the output
follows the interval; a missing or unexpected interval is a one-line error."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretrainx.models.dit import DiT
from pretrainx.models.unet import UNet

KEY = jax.random.key(0, impl="unsafe_rbg")
BACKBONES = {
    "unet": (lambda **kw: UNet(ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,),
                               num_classes=10, **kw), {"interval_dense0", "interval_dense1"}),
    "dit": (lambda **kw: DiT(patch_size=2, hidden_size=32, depth=1, num_heads=2, num_classes=10,
                             **kw), {"interval_embed0", "interval_embed1"}),
}
# The default UNet above as it was before the interval option: its top-level modules. A new
# default parameter would break existing checkpoints, so this list is pinned, not derived.
UNET_MODULES = {"conv_in", "conv_out", "down0_res0", "down0_downsample", "down1_res0",
                "down1_attn0", "label_embed", "mid_attn", "mid_res0", "mid_res1", "norm_out",
                "temb_dense0", "temb_dense1", "up0_res0", "up0_res1", "up1_attn0", "up1_attn1",
                "up1_res0", "up1_res1", "up1_upsample"}


def _inputs():
    x = jax.random.normal(jax.random.key(1), (3, 8, 8, 1))
    return x, jnp.array([10.0, 500.0, 990.0]), jnp.array([0, 4, 10])


@pytest.mark.slow      # 15-35 s on 2 cores: out of the -m 'not slow' set's 10 min
@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_interval_embedding_is_off_by_default_and_adds_only_its_mlp(name):
    make, added = BACKBONES[name]
    x, t, labels = _inputs()
    default = nn.meta.unbox(jax.jit(lambda: make().init(KEY, x, t, labels=labels))()["params"])
    if name == "unet":
        assert set(default) == UNET_MODULES
    with_interval = nn.meta.unbox(jax.jit(lambda: make(interval_embedding=True).init(
        KEY, x, t, labels=labels, interval=t))()["params"])
    assert set(with_interval) - set(default) == added and set(default) <= set(with_interval)
    # same init key: every parameter the default model has starts at the same values
    for k in default:
        jax.tree.map(np.testing.assert_array_equal, default[k], with_interval[k])

    rng = np.random.default_rng(0)   # zero-initialised output layers: randomise to see effects
    params = jax.tree.map(lambda p: jnp.asarray(p + 0.1 * rng.standard_normal(p.shape), p.dtype),
                          with_interval)
    model = make(interval_embedding=True)
    forward = jax.jit(lambda interval: model.apply({"params": params}, x, t, labels=labels,
                                                   interval=interval))
    assert not np.allclose(forward(jnp.zeros(3)), forward(jnp.full(3, 250.0)))
    with pytest.raises(ValueError, match="interval_embedding=True: pass interval="):
        model.apply({"params": params}, x, t, labels=labels)
    with pytest.raises(ValueError, match="built with interval_embedding=False"):
        make().apply({"params": default}, x, t, labels=labels, interval=t)
