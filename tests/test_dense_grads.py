"""``model.dense_grads`` (models/dense.py): the dense layers' kernel gradients written
inputs-first give the same losses and gradients as JAX's own rule, for every model family's
dense layers (GPT with an untied head, Llama's gated MLP with GQA, BERT's head, T5's
encoder-decoder), and other contractions pass through untouched."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretrainx.models import bert, dense, gpt, t5
from pretrainx.models.transformer import TransformerConfig

TOKENS = jax.random.randint(jax.random.key(1), (3, 8), 0, 29)
GPT_CFG = TransformerConfig(vocab_size=29, num_layers=2, num_heads=4, embed_dim=32, max_len=8,
                            tie_embeddings=False)
LLAMA_CFG = dataclasses.replace(GPT_CFG, num_kv_heads=2, mlp_gated=True, mlp_activation="silu",
                                norm="rmsnorm", use_bias=False, rope=True)
T5_CFG = TransformerConfig(vocab_size=29, num_layers=2, num_heads=2, head_size=8, embed_dim=16,
                           mlp_dim=32, mlp_gated=True, use_bias=False, norm="rmsnorm",
                           scaled_attention=False, init_style="t5", relative_buckets=8,
                           tie_embeddings=False, max_len=8)


def _loss_and_grads(model, params, *args):
    def loss(p):
        out = model.apply({"params": p}, *args)
        out = out[0] if isinstance(out, tuple) else out
        return jnp.mean(jnp.square(out.astype(jnp.float32)))
    return jax.value_and_grad(loss)(params)


@pytest.mark.parametrize("family", ["gpt", "llama", pytest.param("bert", marks=pytest.mark.slow),
                                    pytest.param("t5", marks=pytest.mark.slow)])
def test_inputs_first_kernel_grads_equal_jax_rule(family):
    make = {"gpt": lambda c: (gpt.GPT(c), (TOKENS,)),
            "llama": lambda c: (gpt.GPT(c), (TOKENS,)),
            "bert": lambda c: (bert.Bert(c), (TOKENS,)),
            "t5": lambda c: (t5.T5(c), (TOKENS, TOKENS[:, :5]))}[family]
    cfg = {"gpt": GPT_CFG, "llama": LLAMA_CFG,
           "bert": dataclasses.replace(GPT_CFG, attention_kind="bidirectional",
                                       norm_position="post", init_style="bert"),
           "t5": T5_CFG}[family]
    results = {}
    for choice in ("jax", "inputs_first"):
        model, args = make(dataclasses.replace(cfg, dense_grads=choice))
        params = model.init(jax.random.key(0), *args)["params"]
        results[choice] = _loss_and_grads(model, params, *args)
    (loss_a, grads_a), (loss_b, grads_b) = results["jax"], results["inputs_first"]
    assert float(loss_a) == float(loss_b)
    flat_a, flat_b = jax.tree_util.tree_leaves_with_path(grads_a), jax.tree.leaves(grads_b)
    assert len(flat_a) == len(flat_b)
    for (path, a), b in zip(flat_a, flat_b):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6,
                                   err_msg=jax.tree_util.keystr(path))


def test_dense_contractions_go_through_the_custom_matmul_and_others_do_not():
    x = jax.random.normal(jax.random.key(0), (2, 3, 4, 5))
    w = jax.random.normal(jax.random.key(1), (4, 5, 6))
    dims = (((2, 3), (0, 1)), ((), ()))
    want = jax.lax.dot_general(x, w, dims)
    np.testing.assert_allclose(dense.inputs_first_dot_general(x, w, dims), want, rtol=1e-6)
    assert "custom_vjp_call" in str(jax.make_jaxpr(
        lambda a, b: dense.inputs_first_dot_general(a, b, dims))(x, w))
    batched = (((3,), (1,)), ((0,), (0,)))      # a batch axis: not a dense layer's contraction
    y = jax.random.normal(jax.random.key(2), (2, 5, 7))
    assert "custom_vjp_call" not in str(jax.make_jaxpr(
        lambda a, b: dense.inputs_first_dot_general(a, b, batched))(x, y))


def test_auto_is_inputs_first_on_a_cpu_only():
    assert jax.default_backend() == "cpu"
    assert dense.dense_dot_general("auto") is dense.inputs_first_dot_general
    assert dense.dense_dot_general("jax") is None
    with pytest.raises(Exception, match="dense_grads"):
        dataclasses.replace(GPT_CFG, dense_grads="fast")
