"""Generation past the context length (pretrainx/models/decoding.py): once prompt + new tokens
outgrow ``max_len`` the model sees only the last ``max_len`` tokens, as nanoGPT crops its
context. Greedy output over 3x the context equals, token for token, a reference loop that crops
the text and runs the model's plain forward pass each step, for learned positions, rotary
positions (a Llama-style block: RMSNorm, gated MLP, grouped-query attention) and a prefix-LM."""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretrainx.errors import UserError
from pretrainx.models import decoding
from pretrainx.models.gpt import GPT, GPTDecoder
from pretrainx.models.transformer import TransformerConfig

L = 8                    # the context
BASE = TransformerConfig(vocab_size=23, num_layers=1, num_heads=4, embed_dim=32, max_len=L)
CONFIGS = {
    "learned": BASE,
    "rotary_llama": dataclasses.replace(BASE, rope=True, norm="rmsnorm", mlp_gated=True,
                                        num_kv_heads=2, use_bias=False, tie_embeddings=False),
    "prefix": dataclasses.replace(BASE, attention_kind="prefix"),
}


@functools.lru_cache(maxsize=None)
def _params(name):
    cfg = CONFIGS[name]
    prefix = {"prefix_length": jnp.ones((1,), jnp.int32)} if cfg.attention_kind == "prefix" else {}
    return GPT(cfg).init(jax.random.key(1), jnp.zeros((1, L), jnp.int32), **prefix)["params"]


@functools.lru_cache(maxsize=None)
def _forward(name):
    cfg = CONFIGS[name]
    if cfg.attention_kind == "prefix":
        return jax.jit(lambda p, x, n: GPT(cfg).apply({"params": p}, x, prefix_length=n))
    return jax.jit(lambda p, x, n: GPT(cfg).apply({"params": p}, x))


def reference_greedy(name, prompt: list[int], new: int) -> list[int]:
    """nanoGPT's loop: crop to the last L tokens, run the whole model, append the argmax. A
    prefix-LM's prefix is the part of the prompt still in the cropped window."""
    ids = list(prompt)
    for _ in range(new):
        window = ids[-L:]
        prefix = max(len(prompt) - (len(ids) - len(window)), 0)
        padded = np.zeros((1, L), np.int32)       # right padding: causal rows never see it
        padded[0, :len(window)] = window
        logits = _forward(name)(_params(name), jnp.asarray(padded), jnp.asarray([prefix]))
        ids.append(int(np.argmax(np.asarray(logits)[0, len(window) - 1])))
    return ids


@pytest.mark.parametrize("name,prompt_len", [(name, 3) for name in CONFIGS] + [("learned", L + 2)])
def test_greedy_past_the_context_equals_a_cropping_reference(name, prompt_len):
    """3x the context; the last case's prompt alone is longer than the context."""
    prompt = list(np.random.RandomState(prompt_len).randint(0, BASE.vocab_size, prompt_len))
    new = 3 * L
    out = decoding.continue_prompt(GPTDecoder(CONFIGS[name]), _params(name), np.asarray(prompt),
                                   new, rng=jax.random.key(0), temperature=0.0)
    assert out.shape == (1, prompt_len + new)          # as long as asked
    assert out[0].tolist() == reference_greedy(name, prompt, new)


def test_left_padded_rows_slide_as_each_would_alone():
    name = "rotary_llama"
    prompts = [[3, 1, 4, 1, 5, 9], [2, 7]]
    ids, mask = decoding.left_pad(prompts)
    out = decoding.generate(GPTDecoder(CONFIGS[name]), _params(name), ids, 2 * L,
                            rng=jax.random.key(0), temperature=0.0, prompt_mask=mask)
    for row, prompt in zip(np.asarray(out.tokens), prompts):
        assert row.tolist() == reference_greedy(name, prompt, 2 * L)[len(prompt):]
    assert np.isfinite(np.asarray(out.log_probs)).all() and (np.asarray(out.log_probs) <= 0).all()


def test_sampling_past_the_context_is_seeded_and_eos_stops_rows():
    decoder, params = GPTDecoder(BASE), _params("learned")
    prompt = np.arange(4)[None].repeat(8, 0)
    draw = lambda: decoding.generate(decoder, params, prompt, 3 * L, rng=jax.random.key(7),
                                     temperature=2.0, eos_id=5)
    a, b = draw(), draw()
    np.testing.assert_array_equal(a.tokens, b.tokens)
    tokens, lengths = np.asarray(a.tokens), np.asarray(a.lengths)
    assert len(set(map(tuple, tokens))) > 1           # rows draw with their own keys
    for row, n in zip(tokens, lengths):                # EOS ends a row, pads follow
        assert (row[n:] == 0).all() and (n == 3 * L or row[n - 1] == 5) and 5 not in row[:n - 1]
    assert (lengths > L - 3).any()                      # some row did sample past the cache


@dataclasses.dataclass(frozen=True)
class CacheOnlyDecoder:
    """A decoder without ``forward`` (like T5's): it cannot slide, so a request past its cache is
    a one-line error naming the most it can give."""
    inner: GPTDecoder
    max_len = L
    vocab_size = BASE.vocab_size

    def init_cache(self, params, batch_size):
        return self.inner.init_cache(params, batch_size)

    def step(self, *args):
        return self.inner.step(*args)


def test_a_decoder_without_forward_says_what_fits():
    decoder = CacheOnlyDecoder(GPTDecoder(BASE))
    with pytest.raises(UserError, match=r"prompt length 3 \+ max_new_tokens 7 .* at most 6 new"):
        decoding.continue_prompt(decoder, _params("learned"), np.arange(3), 7, rng=jax.random.key(0))
    out = decoding.continue_prompt(decoder, _params("learned"), np.arange(3), 6,
                                   rng=jax.random.key(0), temperature=0.0)
    assert out[0].tolist() == reference_greedy("learned", [0, 1, 2], 6)
