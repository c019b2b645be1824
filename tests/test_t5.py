"""T5 encoder-decoder (models/t5.py): relative position buckets against the paper's bucketing,
encoder bidirectional / decoder causal / cross-attention by gradients, packing, cached decoding,
and the published parameter counts of T5-small v1.0 and v1.1."""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretrainx.models import decoding, t5
from pretrainx.models.attention import relative_position_bucket
from pretrainx.models.transformer import TransformerConfig

S, T = 6, 5
TINY = TransformerConfig(vocab_size=32, num_layers=2, num_heads=2, head_size=8, embed_dim=16,
                         mlp_dim=32, mlp_gated=True, use_bias=False, norm="rmsnorm",
                         norm_eps=1e-6, scaled_attention=False, init_style="t5",
                         relative_buckets=8, relative_max_distance=16, tie_embeddings=False,
                         max_len=12)
T5_COMMON = dict(vocab_size=32128, embed_dim=512, use_bias=False, norm="rmsnorm", norm_eps=1e-6,
                 scaled_attention=False, init_style="t5", relative_buckets=32, max_len=512)


def test_relative_buckets_match_the_paper_on_hand_cases():
    """Raffel et al. 2020 / mesh_tensorflow: 32 buckets up to distance 128. Bidirectional: 16
    buckets per direction, exact up to 7, then log bins: 8 + floor(log(n/8)/log(16) * 8)."""
    bidir = lambda d: int(relative_position_bucket(np.asarray(d), bidirectional=True))
    causal = lambda d: int(relative_position_bucket(np.asarray(d), bidirectional=False))
    # key before the query (d = key - query < 0): buckets 0..15; after it: 16..31
    assert [bidir(d) for d in (0, -1, -7, -8, -12, -16, -32, -64, -127, -128, -1000)] == \
        [0, 1, 7, 8, 9, 10, 12, 14, 15, 15, 15]
    assert [bidir(d) for d in (1, 7, 8, 16, 1000)] == [17, 23, 24, 26, 31]
    # unidirectional: 32 buckets for the past, exact up to 15; the future is bucket 0
    assert [causal(d) for d in (0, -1, -15, -16, -32, -64, -128, -5000, 1, 9)] == \
        [0, 1, 15, 16, 21, 26, 31, 31, 0, 0]
    # numpy and jax agree
    d = np.arange(-200, 200)
    np.testing.assert_array_equal(relative_position_bucket(jnp.asarray(d), bidirectional=True),
                                  relative_position_bucket(d, bidirectional=True))


@functools.lru_cache(maxsize=None)
def _params():
    return nn.unbox(t5.init_params(TINY, jax.random.key(0), S, T))


ENC = np.arange(1, 1 + S, dtype=np.int32)[None]          # every token once: enc ids 1..6,
DEC = np.arange(10, 10 + T, dtype=np.int32)[None]        # dec ids 10..14


def _projection(width):
    return jax.random.normal(jax.random.key(1), (width,))


def dependence(**kwargs):
    """[i, j] for decoder output i: does it depend on encoder token j (first S columns) and on
    decoder token j (last T columns)? From the gradient wrt each token's (shared) embedding row.
    Outputs are read through a fixed random projection: a plain sum can be constant in the inputs
    after a normalisation at its initial scale, leaving only rounding noise to differentiate."""
    params = _params()

    def out(table):
        p = {**params, "token_embedder": {"embedding": table}}
        logits = t5.T5(TINY).apply({"params": p}, ENC, DEC, **kwargs)[0]
        return logits @ _projection(logits.shape[-1])
    jac_TxVxE = jax.jit(jax.jacrev(out))(params["token_embedder"]["embedding"])
    columns = np.concatenate([ENC[0], DEC[0]])
    return np.abs(np.asarray(jac_TxVxE)[:, columns]).sum(-1) > 0


def encoder_dependence():
    params = _params()

    def out(table):
        p = {**params, "token_embedder": {"embedding": table}}
        features = t5.T5(TINY).apply({"params": p}, ENC, method="encode")[0]
        return features @ _projection(features.shape[-1])
    jac_SxVxE = jax.jit(jax.jacrev(out))(params["token_embedder"]["embedding"])
    return np.abs(np.asarray(jac_SxVxE)[:, ENC[0]]).sum(-1) > 0


@pytest.mark.slow      # 15-35 s on 2 cores: out of the -m 'not slow' set's 10 min
def test_encoder_bidirectional_decoder_causal_cross_attention_full():
    np.testing.assert_array_equal(encoder_dependence(), np.ones((S, S), bool))
    dep = dependence()
    assert dep[:, :S].all()                                    # every encoder token, always
    I, J = np.arange(T)[:, None], np.arange(T)[None, :]
    np.testing.assert_array_equal(dep[:, S:], J <= I)         # causal over the decoder


def test_encoder_padding_is_hidden_from_the_decoder():
    dep = dependence(encoder_mask=jnp.asarray([[1, 1, 1, 1, 0, 0]]))
    assert dep[:, :4].all() and not dep[:, 4:S].any()


@pytest.mark.slow      # 15-35 s on 2 cores: out of the -m 'not slow' set's 10 min
def test_packed_examples_equal_each_alone():
    params, model = _params(), t5.T5(TINY)
    enc = np.asarray([[1, 2, 3, 4, 5, 6]], np.int32)
    dec = np.asarray([[7, 8, 9, 10, 11]], np.int32)
    enc_seg, dec_seg = jnp.asarray([[1, 1, 1, 2, 2, 2]]), jnp.asarray([[1, 1, 2, 2, 2]])
    packed = model.apply({"params": params}, enc, dec, encoder_segment_ids=enc_seg,
                         decoder_segment_ids=dec_seg)
    first = model.apply({"params": params}, enc[:, :3], dec[:, :2])
    second = model.apply({"params": params}, enc[:, 3:], dec[:, 2:])
    np.testing.assert_allclose(packed[0, :2], first[0], atol=1e-5)
    np.testing.assert_allclose(packed[0, 2:], second[0], atol=1e-5)


def test_cached_decoding_equals_full_recompute():
    params = _params()
    enc = np.random.RandomState(0).randint(1, 32, (2, S)).astype(np.int32)
    mask = np.ones((2, S), bool)
    mask[1, 4:] = False
    encoded = t5.encoded_params(TINY, params, enc, mask)
    out = decoding.continue_prompt(t5.T5Decoder(TINY), encoded, np.zeros((2, 1), np.int32), 6,
                            rng=jax.random.key(0), temperature=0.0)
    full = jax.jit(lambda e, d: t5.T5(TINY).apply({"params": params}, e, d, encoder_mask=mask))
    padded = np.zeros((2, 7), np.int32)
    padded[:, :out.shape[1]] = out
    logits = np.asarray(full(enc, padded))          # causal: the tail cannot change the past
    np.testing.assert_array_equal(out[:, 1:], logits[:, :6].argmax(-1))


def _count(cfg):
    return t5.param_count(jax.eval_shape(lambda: t5.init_params(cfg, jax.random.key(0))))


def test_t5_small_parameter_counts_match_the_published_numbers():
    """T5-small v1.0 (Raffel et al. 2020, table 14 / section 3.7: "60 million"; Hugging Face
    t5-small: 60,506,624) and v1.1 (google/t5-v1_1-small: 77M, 76,961,152), counted with the
    shared embedding once (v1.0 ties the output projection to it; v1.1 has its own)."""
    v10 = TransformerConfig(num_layers=6, num_heads=8, mlp_dim=2048, mlp_activation="relu",
                            **T5_COMMON)
    v11 = TransformerConfig(num_layers=8, num_heads=6, head_size=64, mlp_dim=1024,
                            mlp_gated=True, tie_embeddings=False, **T5_COMMON)
    assert _count(v10) == 60_506_624 and abs(_count(v10) - 60.5e6) / 60.5e6 < 0.01
    assert _count(v11) == 76_961_152 and abs(_count(v11) - 77e6) / 77e6 < 0.01


def test_t5_base_configs_have_the_published_parameter_counts():
    """configs/t5/t5_base.py: google/t5-v1_1-base 247,577,856 and t5-base (v1.0) 222,903,552
    (Hugging Face's counts, the shared embedding once)."""
    import os
    from pretrainx.config import load as config_lib
    root = os.path.join(os.path.dirname(__file__), "..", "configs", "t5", "t5_base.py")
    for variant, expected in (("", 247_577_856), (":v1_0", 222_903_552)):
        c = config_lib.load(root + variant)
        assert _count(TransformerConfig.from_config(c.model)) == expected, variant
