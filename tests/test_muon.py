"""optimizer.name = "muon": the blocks' matrices take optax's Muon step, checked against a NumPy
Newton-Schulz written here; everything else takes the same AdamW step as name = "adamw"."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from pretrainx.config import base
from pretrainx.core import optim
from pretrainx.errors import UserError
from pretrainx.models.gpt import GPT
from pretrainx.models.transformer import TransformerConfig
from tiny_training import next_token_losses

# optax.contrib.muon's default quintic coefficients (Jordan's modded-nanogpt), 5 steps
NS_COEFFS = (3.4445, -4.7750, 2.0315)
MUON_LR, LR, WD = 0.02, 1e-3, 0.1


def newton_schulz(g, steps=5, eps=1e-8):
    """The quintic iteration X <- aX + (b A + c A^2) X, A = X X^T, on the short side, in float64."""
    a, b, c = NS_COEFFS
    x = np.asarray(g, np.float64)
    wide = x.shape[0] <= x.shape[1]
    x = x if wide else x.T
    x = x / (np.linalg.norm(x) + eps)
    for _ in range(steps):
        A = x @ x.T
        x = a * x + (b * A + c * A @ A) @ x
    return x if wide else x.T


def reference_first_step(grad_matrix, param_matrix):
    """Muon's first update: the momentum is a multiple of the gradient, which the Frobenius
    normalisation removes; times sqrt(max(1, fan_out / fan_in)); decoupled weight decay."""
    fan_in, fan_out = grad_matrix.shape
    direction = newton_schulz(grad_matrix) * np.sqrt(max(1.0, fan_out / fan_in))
    return -MUON_LR * (direction + WD * np.asarray(param_matrix, np.float64))


def opt_config(name="muon"):
    return base.change(base.optimizer(), {"name": name, "lr": LR, "muon_lr": MUON_LR,
                                          "weight_decay": WD, "schedule": "constant",
                                          "warmup_steps": 0, "clip_norm": 0.0})


def tree(seed):
    """A GPT-shaped parameter tree: an MLP pair, an attention output (heads, kv, embed),
    a query (embed, heads, kv), an embedding, a norm and a head."""
    rng = np.random.default_rng(seed)
    r = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)
    return {"h_0": {"mlp": {"fc": {"kernel": r(16, 32)}, "proj": {"kernel": r(32, 16)}},
                    "attn": {"out": {"kernel": r(2, 4, 16)}, "query": {"kernel": r(16, 2, 4)}},
                    "ln_1": {"scale": r(16)}},
            "wte": {"embedding": r(10, 16)}, "ln_f": {"scale": r(16)},
            "lm_head": {"kernel": r(16, 10)}}


def first_update(name, params, grads, shardings=None):
    tx, _ = optim.make_optimizer(opt_config(name), params)
    step = lambda g, p: tx.update(g, tx.init(p), p)[0]
    if shardings is not None:
        step = jax.jit(step, in_shardings=(shardings, shardings))
    return step(grads, params)


def check_matrices(updates, params, grads):
    block, pblock, gblock = updates["h_0"], params["h_0"], grads["h_0"]
    pairs = [(block["mlp"]["fc"]["kernel"], gblock["mlp"]["fc"]["kernel"], pblock["mlp"]["fc"]["kernel"]),
             (block["mlp"]["proj"]["kernel"], gblock["mlp"]["proj"]["kernel"],
              pblock["mlp"]["proj"]["kernel"])]
    # attention kernels as Muon sees them: out (H*D, E), query (E, H*D)
    for name, shape in (("out", (8, 16)), ("query", (16, 8))):
        pairs.append(tuple(np.reshape(t["attn"][name]["kernel"], shape) for t in (block, gblock, pblock)))
    for got, g, p in pairs:
        want = reference_first_step(g, p)
        np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=2e-5 * np.abs(want).max())


@pytest.mark.parametrize("devices", [1, 8])
def test_muon_matrices_match_numpy_newton_schulz(devices):
    params, grads = tree(0), tree(1)
    shardings = None
    if devices > 1:     # the matrices fsdp-sharded over 8 devices, the rest replicated
        mesh = Mesh(np.array(jax.devices()[:devices]), ("fsdp",))
        spec = lambda x: P("fsdp") if x.ndim >= 2 and x.shape[0] % devices == 0 else P()
        shardings = jax.tree.map(lambda x: NamedSharding(mesh, spec(x)), params)
        params = jax.device_put(params, shardings)
        grads = jax.device_put(grads, shardings)
        assert not params["h_0"]["mlp"]["fc"]["kernel"].sharding.is_fully_replicated
    check_matrices(first_update("muon", params, grads, shardings), params, grads)


def test_adamw_part_is_plain_adamw_on_embeddings_norms_and_head():
    params, grads = tree(0), tree(1)
    muon, adamw = first_update("muon", params, grads), first_update("adamw", params, grads)
    labels = optim.muon_labels(params)
    flat_labels = dict(jax.tree_util.tree_leaves_with_path(labels))
    assert sorted(jax.tree_util.keystr(k) for k, v in flat_labels.items() if v == "muon") == [
        "['h_0']['attn']['out']['kernel']", "['h_0']['attn']['query']['kernel']",
        "['h_0']['mlp']['fc']['kernel']", "['h_0']['mlp']['proj']['kernel']"]
    for path, label in flat_labels.items():
        got = np.asarray(_at(muon, path))
        if label == "adamw":   # embeddings, norms, head: the AdamW step, bit for bit
            np.testing.assert_array_equal(got, np.asarray(_at(adamw, path)))
        else:                  # the matrices: not Adam's sign-like step
            assert not np.allclose(got, np.asarray(_at(adamw, path)), atol=1e-6)


def _at(tree_, path):
    for k in path:
        tree_ = tree_[k.key]
    return tree_


@pytest.mark.slow
def test_muon_trains_a_tiny_gpt_with_clipping_and_a_schedule():
    """The whole optimizer (clip, warm-up + cosine, decay mask) in a jitted loop: loss falls."""
    cfg = TransformerConfig(vocab_size=16, num_layers=2, num_heads=2, embed_dim=32, max_len=16)
    model = GPT(cfg)
    tokens = jax.random.randint(jax.random.key(0), (8, 16), 0, 16)
    tokens = tokens.at[:, 1::2].set((tokens[:, ::2] + 1) % 16)   # every other token predictable
    params = nn.unbox(model.init(jax.random.key(1), tokens)["params"])
    opt = base.change(opt_config(), {"schedule": "cosine", "warmup_steps": 5, "decay_steps": 30,
                                     "clip_norm": 1.0})
    tx, _ = optim.make_optimizer(opt, params)
    losses = next_token_losses(model, params, tx, tokens, 30)
    assert losses[-1] < losses[0] - 0.5, losses


def test_unknown_optimizer_is_a_user_error():
    with pytest.raises(UserError, match="optimizer.name 'sgd'"):
        optim.make_optimizer(opt_config("sgd"), tree(0))


def test_muon_on_a_model_without_blocks_is_a_user_error():
    params = {"conv": {"kernel": jnp.zeros((3, 3, 1, 4))}, "norm": {"scale": jnp.ones(4)}}
    with pytest.raises(UserError, match="no matrices for Muon"):
        optim.make_optimizer(opt_config(), params)
