"""The Llama-family pieces of the shared transformer: grouped-query attention (its parameters,
KV cache and dropout path), Llama 3's RoPE frequencies, and the published sizes' parameter
counts (counted from the recipes with jax.eval_shape, nothing materialised)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretrainx.models import attention, decoding, gpt, transformer
from pretrainx.tools import reproduce
from pretrainx.tools.registry import ENTRIES


def _llama(**fields) -> transformer.TransformerConfig:
    base = dict(vocab_size=61, num_layers=2, num_heads=4, num_kv_heads=2, embed_dim=32,
                head_size=8, mlp_dim=48, max_len=40, use_bias=False, tie_embeddings=False,
                rope=True, norm="rmsnorm", mlp_activation="silu", mlp_gated=True,
                rope_theta=500000.0)
    return transformer.TransformerConfig(**{**base, **fields})


def test_grouped_query_attention_has_kv_heads_keys_values_and_cache():
    cfg = _llama(num_kv_heads=1, qkv_bias=True)             # multi-query, Qwen2's biases
    tokens = jnp.zeros((2, 5), jnp.int32)
    params = nn.unbox(jax.eval_shape(gpt.GPT(cfg).init, jax.random.key(0), tokens)["params"])
    attn = params["h_0"]["attn"]
    assert attn["query"]["kernel"].shape == (32, 4, 8)
    assert attn["key"]["kernel"].shape == (32, 1, 8)
    assert attn["value"]["bias"].shape == (1, 8)
    assert "bias" not in attn["out"]                         # qkv_bias: no other bias
    cache = gpt.GPTDecoder(cfg).init_cache(None, 2)
    assert cache["h_0"]["attn"]["cached_key"].shape == (2, 40, 1, 8)


def test_cached_greedy_decoding_equals_full_forward_argmax():
    cfg = _llama()
    params = gpt.GPT(cfg).init(jax.random.key(1), jnp.zeros((1, 4), jnp.int32))["params"]
    params = jax.tree.map(lambda p: p * 8, params)            # spread the logits: no near ties
    prompt = np.array([[3, 14, 15, 9, 2]])
    out = decoding.continue_prompt(gpt.GPTDecoder(cfg), params, prompt, 12,
                                   rng=jax.random.key(0), temperature=0)
    # No cache: the whole row each time, padded to one length (causal: the padding after
    # position t does not change its logits), so the forward compiles once.
    forward = jax.jit(lambda row: gpt.GPT(cfg).apply({"params": params}, row))
    seq = np.zeros((1, 17), np.int32)
    seq[:, :5] = prompt
    for t in range(5, 17):
        seq[0, t] = int(np.argmax(forward(jnp.asarray(seq))[0, t - 1]))
    np.testing.assert_array_equal(out, seq)


def test_explicit_attention_groups_heads_as_the_fused_kernel():
    ks = jax.random.split(jax.random.key(2), 3)
    q = jax.random.normal(ks[0], (2, 6, 4, 8))
    k, v = (jax.random.normal(key, (2, 6, 2, 8)) for key in ks[1:])
    fused = jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation="xla")
    np.testing.assert_allclose(attention.explicit_attention(q, k, v, None, True), fused, atol=1e-5)


def test_llama3_rope_frequencies_match_transformers():
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    hf = LlamaConfig(hidden_size=2048, num_attention_heads=32, rope_parameters=rope)
    expected, _ = ROPE_INIT_FUNCTIONS["llama3"](hf, "cpu")
    ours = attention.rope_inv_freq(_llama(head_size=64, rope_scaling="llama3", rope_scaling_factor=32.0))
    plain = attention.rope_inv_freq(_llama(head_size=64))
    np.testing.assert_allclose(np.asarray(ours), expected.numpy(), rtol=1e-6)
    assert not np.allclose(ours, plain)                       # the scaling changed something


def test_bad_kv_heads_and_rope_scaling_are_refused():
    with pytest.raises(ValueError, match="num_kv_heads 3 must divide num_heads 4"):
        _llama(num_kv_heads=3)
    with pytest.raises(ValueError, match="rope_scaling must be one of"):
        _llama(rope_scaling="yarn")


@pytest.mark.parametrize("name, count", [("llama3_2_1b_params", 1_235_814_400),
                                         ("qwen2_5_0_5b_params", 494_032_768)])
def test_published_sizes_have_their_published_parameter_counts(name, count):
    entry = reproduce.find(ENTRIES, name)
    assert entry.source and entry.target.passes(count)
    assert reproduce.measure(entry, "") == count
