"""Decoding (pretrainx/models/decoding.py) with the GPT's KV cache: greedy == argmax of a full recompute,
determinism, top_k, input checks; left-padded batches decode as each row alone; EOS stops a row;
the whole decode runs inside jit; a prefix-LM decodes its prompt as the prefix."""
import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretrainx.models import decoding
from pretrainx.models.gpt import GPT, GPTDecoder
from pretrainx.models.transformer import TransformerConfig

CFG = TransformerConfig(vocab_size=17, num_layers=2, num_heads=4, embed_dim=32, max_len=16)
B, P, N = 2, 5, 6
DECODER = GPTDecoder(CFG)


def generate(cfg, params, prompt, n, **kw):
    assert cfg == CFG
    return decoding.continue_prompt(DECODER, params, prompt, n, **kw)


@functools.lru_cache(maxsize=None)
def _params():
    """Boxed params, as model.init returns them."""
    return jax.jit(GPT(CFG).init)(jax.random.key(0), jnp.zeros((B, CFG.max_len), jnp.int32))["params"]


@functools.lru_cache(maxsize=None)
def _full_logits_fn():
    return jax.jit(lambda p, x: GPT(CFG).apply({"params": p}, x))


def _full_logits(ids_BxL):
    """Logits of the non-cached model on ids right-padded to max_len (one compile for all)."""
    padded = np.zeros((ids_BxL.shape[0], CFG.max_len), np.int32)
    padded[:, :ids_BxL.shape[1]] = ids_BxL
    return np.asarray(_full_logits_fn()(_params(), padded))


def _prompt():
    return np.random.RandomState(0).randint(0, CFG.vocab_size, size=(B, P)).astype(np.int32)


@functools.lru_cache(maxsize=None)
def _greedy():
    return generate(CFG, nn.unbox(_params()), _prompt(), N, rng=jax.random.key(0), temperature=0.0)


def test_greedy_equals_argmax_of_full_recompute():
    prompt, out = _prompt(), _greedy()
    assert out.shape == (B, P + N) and out.dtype == np.int32
    np.testing.assert_array_equal(out[:, :P], prompt)
    seq = prompt
    for _ in range(N):  # recompute everything from scratch for every new token
        nxt = _full_logits(seq)[:, seq.shape[1] - 1].argmax(-1)
        seq = np.concatenate([seq, nxt[:, None].astype(np.int32)], axis=1)
    np.testing.assert_array_equal(out, seq)


def test_boxed_params_and_1d_prompt():
    # Boxed params (straight from init) give the same greedy ids as unboxed ones.
    out = generate(CFG, _params(), _prompt(), N, rng=jax.random.key(5), temperature=0.0)
    np.testing.assert_array_equal(out, _greedy())
    # A 1-D prompt is a batch of one.
    one = generate(CFG, {"params": _params()}, _prompt()[0], N, rng=jax.random.key(0), temperature=0.0)
    assert one.shape == (1, P + N)
    np.testing.assert_array_equal(one[0], _greedy()[0])


def test_sampling_deterministic_given_rng_and_top_k():
    params, prompt = nn.unbox(_params()), _prompt()
    a = generate(CFG, params, prompt, N, rng=jax.random.key(1), temperature=1.0)
    b = generate(CFG, params, prompt, N, rng=jax.random.key(1), temperature=1.0)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[:, :P], prompt)
    assert a.min() >= 0 and a.max() < CFG.vocab_size
    # With 2 x 6 draws over 17 tokens, three different keys cannot all match key 1.
    others = [generate(CFG, params, prompt, N, rng=jax.random.key(s), temperature=1.0)
              for s in (2, 3, 4)]
    assert any((o != a).any() for o in others)
    # top_k=1 is greedy, whatever the temperature.
    k1 = generate(CFG, params, prompt, N, rng=jax.random.key(1), temperature=5.0, top_k=1)
    np.testing.assert_array_equal(k1, _greedy())


def test_top_k_only_samples_among_k_largest():
    params, prompt, k = nn.unbox(_params()), _prompt(), 3
    out = generate(CFG, params, prompt, N, rng=jax.random.key(7), temperature=100.0, top_k=k)
    logits = _full_logits(out)  # causal: position t's logits depend only on out[:, :t+1]
    for t in range(P - 1, P + N - 1):
        top = np.argsort(-logits[:, t], axis=-1)[:, :k]
        assert all(out[i, t + 1] in top[i] for i in range(B)), t


def test_a_request_past_the_context_slides_and_zero_is_the_prompt():
    # past max_len the GPT slides its window (tests/test_generation_window.py checks the ids)
    assert generate(CFG, _params(), _prompt(), 12, rng=jax.random.key(0)).shape == (B, P + 12)
    assert generate(CFG, _params(), _prompt(), 0, rng=jax.random.key(0)).shape == (B, P)


def test_vocab_size_bounds_the_ids_of_a_padded_output_layer():
    # A model whose output has 17 rows but whose tokenizer knows 5 ids never emits ids >= 5.
    params, prompt = nn.unbox(_params()), _prompt() % 5
    out = generate(CFG, params, prompt, N, rng=jax.random.key(3), temperature=5.0, vocab_size=5)
    assert out.max() < 5
    with pytest.raises(ValueError, match=r"top_k must be in \[1, 5\]"):
        generate(CFG, params, prompt, N, rng=jax.random.key(3), top_k=6, vocab_size=5)


# ---- left-padded batches, EOS, decoding inside jit --------------------------------------------

PROMPTS = [[3, 1, 4, 1, 5], [9, 2], [6, 5, 3, 5]]      # different lengths: left-padded to 5


@functools.lru_cache(maxsize=None)
def _decode_fn(greedy, eos_id=None):
    return jax.jit(functools.partial(decoding.decode, DECODER, max_new_tokens=N, greedy=greedy,
                                     eos_id=eos_id, temperature=1.0))


def _decode(prompts, keys, greedy, eos_id=None):
    ids, mask = decoding.left_pad(prompts)
    return jax.device_get(_decode_fn(greedy, eos_id)(nn.unbox(_params()), ids, mask, keys))


@pytest.mark.slow
@pytest.mark.parametrize("greedy", [True, False], ids=["greedy", "sampled"])
def test_left_padded_batch_decodes_as_each_row_alone(greedy):
    keys = jax.random.split(jax.random.key(11), len(PROMPTS))      # row b draws with keys[b]
    batch = _decode(PROMPTS, keys, greedy)
    assert batch.tokens.shape == (3, N) and batch.log_probs.shape == (3, N)
    for b, prompt in enumerate(PROMPTS):
        alone = _decode([prompt], keys[b:b + 1], greedy)
        np.testing.assert_array_equal(batch.tokens[b], alone.tokens[0])
        np.testing.assert_allclose(batch.log_probs[b], alone.log_probs[0], atol=1e-5)


def test_log_probs_are_the_models():
    (prompt,) = PROMPTS[1:2]
    out = _decode([prompt], jax.random.split(jax.random.key(2), 1), False)
    seq = np.asarray([prompt + out.tokens[0].tolist()], np.int32)
    logp = jax.nn.log_softmax(_full_logits(seq)[0])
    for i, tok in enumerate(out.tokens[0]):          # token i was drawn after len(prompt) + i ids
        assert out.log_probs[0, i] == pytest.approx(float(logp[len(prompt) + i - 1, tok]), abs=1e-5)


def test_eos_stops_a_row_and_pads_the_rest():
    keys = jax.random.split(jax.random.key(5), len(PROMPTS))
    free = _decode(PROMPTS, keys, True)
    eos = int(free.tokens[0, 2])                      # row 0 emits it at step 2 (or earlier)
    stopped = _decode(PROMPTS, keys, True, eos_id=eos)
    for b in range(len(PROMPTS)):
        hits = np.flatnonzero(free.tokens[b] == eos)
        end = hits[0] + 1 if len(hits) else N
        assert stopped.lengths[b] == end
        np.testing.assert_array_equal(stopped.tokens[b, :end], free.tokens[b, :end])
        assert (stopped.tokens[b, end:] == 0).all() and (stopped.log_probs[b, end:] == 0).all()
    assert stopped.lengths[0] <= 3


def test_decoding_runs_inside_a_jitted_function_of_the_params():
    @jax.jit
    def rollout_score(params, prompt, mask, key):      # as an objective's prepare would
        out = decoding.decode(DECODER, params, prompt, mask, key, max_new_tokens=N, greedy=True)
        return out.log_probs.sum()
    ids, mask = decoding.left_pad(PROMPTS)
    keys = jax.random.split(jax.random.key(0), 3)
    total = rollout_score(nn.unbox(_params()), ids, mask, keys)
    assert float(total) == pytest.approx(float(_decode(PROMPTS, keys, True).log_probs.sum()),
                                         rel=1e-5)


@pytest.mark.slow
def test_prefix_model_decodes_its_prompt_as_the_prefix():
    """``pretrainx sample`` on a prefix-LM: the cached decode of a prefix-attention GPT equals
    the argmax of a full recompute with prefix_length = the prompt's length (bidirectional over
    the prompt, causal after it), token by token and in log-probabilities, and the prompt's last
    position is not what a causal read of it gives."""
    cfg = dataclasses.replace(CFG, attention_kind="prefix")
    params, prompt = nn.unbox(_params()), _prompt()
    out = decoding.decode(GPTDecoder(cfg), params, prompt, np.ones_like(prompt), jax.random.key(0),
                          max_new_tokens=N, greedy=True)
    full = jax.jit(lambda x: GPT(cfg).apply({"params": params}, x, prefix_length=jnp.full((B,), P)))
    seq, logps = prompt, []
    for _ in range(N):
        padded = np.zeros((B, CFG.max_len), np.int32)
        padded[:, :seq.shape[1]] = seq
        logits = np.asarray(full(padded))[:, seq.shape[1] - 1]
        nxt = logits.argmax(-1)
        logps.append(np.asarray(jax.nn.log_softmax(logits))[np.arange(B), nxt])
        seq = np.concatenate([seq, nxt[:, None].astype(np.int32)], axis=1)
    np.testing.assert_array_equal(np.asarray(out.tokens), seq[:, P:])
    np.testing.assert_allclose(np.asarray(out.log_probs), np.stack(logps, 1), atol=1e-5)
    causal = _full_logits(prompt)[:, P - 1]
    assert np.abs(np.asarray(full(np.pad(prompt, ((0, 0), (0, CFG.max_len - P)))))[:, P - 1]
                  - causal).max() > 1e-4
