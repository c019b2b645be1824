"""BERT encoder (models/bert.py): bidirectional by gradients, packing, the tied MLM head, pre/post
LN, logical axes, and BERT-base's published parameter count."""
import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from pretrainx.models.bert import Bert
from pretrainx.models.transformer import TransformerConfig

T = 8
TINY = TransformerConfig(vocab_size=24, num_layers=2, num_heads=2, embed_dim=16, max_len=16,
                         type_vocab_size=2, norm_position="post", norm_eps=1e-12,
                         mlp_activation="gelu", init_style="bert")
BERT_BASE = TransformerConfig(vocab_size=30522, num_layers=12, num_heads=12, embed_dim=768,
                              max_len=512, type_vocab_size=2, norm_position="post",
                              norm_eps=1e-12, mlp_activation="gelu", init_style="bert")


@functools.lru_cache(maxsize=None)
def _params(cfg=TINY):
    return nn.unbox(Bert(cfg).init(jax.random.key(0), jnp.zeros((1, T), jnp.int32),
                                   output="all")["params"])


def dependence(cfg, tokens_1xT, **kwargs):
    """[i, j]: do the final features at position i depend on the token at position j? Shown by
    the gradient with respect to the embedding row of token j (every token appears once).

    The features are read through a fixed random projection, not summed: after a post-LN block at
    its initial scale and bias the sum over features is the same constant for every input, so its
    gradient would be rounding noise (exactly 0 on some CPUs) rather than the dependence."""
    assert len(set(tokens_1xT[0].tolist())) == tokens_1xT.shape[1]
    params = _params(cfg)
    projection_E = jax.random.normal(jax.random.key(1), (cfg.embed_dim,))

    def features(wte):
        p = {**params, "wte": {"embedding": wte}}
        out = Bert(cfg).apply({"params": p}, tokens_1xT, output="features", **kwargs)[0]
        return out @ projection_E
    jac_TxVxE = jax.jit(jax.jacrev(features))(params["wte"]["embedding"])
    return np.abs(np.asarray(jac_TxVxE)[:, tokens_1xT[0]]).sum(-1) > 0


TOKENS = np.arange(3, 3 + T, dtype=np.int32)[None]


def test_encoder_attention_is_bidirectional_by_gradients():
    np.testing.assert_array_equal(dependence(TINY, TOKENS), np.ones((T, T), bool))


def test_packed_documents_do_not_see_each_other():
    seg = jnp.asarray([[1, 1, 1, 2, 2, 2, 2, 0]])
    dep = dependence(TINY, TOKENS, segment_ids=seg)
    I, J = np.arange(T)[:, None], np.arange(T)[None, :]
    np.testing.assert_array_equal(dep, np.asarray(seg)[0][I] == np.asarray(seg)[0][J])
    # ... and each packed document's features equal those of the document alone
    positions = jnp.asarray([[0, 1, 2, 0, 1, 2, 3, 0]])
    params = _params()
    packed = Bert(TINY).apply({"params": params}, TOKENS, segment_ids=seg, positions=positions,
                              output="features")
    alone = Bert(TINY).apply({"params": params}, TOKENS[:, 3:7], output="features")
    np.testing.assert_allclose(packed[0, 3:7], alone[0], atol=1e-5)


def test_padding_is_never_attended():
    mask = jnp.asarray([[1, 1, 1, 1, 1, 0, 0, 0]])
    dep = dependence(TINY, TOKENS, input_mask=mask)
    assert dep[:5, :5].all() and not dep[:5, 5:].any()


def test_mlm_head_is_tied_and_outputs_have_their_shapes():
    params = _params()
    assert "lm_head" not in params and params["mlm_bias"].shape == (TINY.vocab_size,)
    logits, pooled = Bert(TINY).apply({"params": params}, TOKENS, output="all")
    assert logits.shape == (1, T, TINY.vocab_size) and logits.dtype == jnp.float32
    assert pooled.shape == (1, TINY.embed_dim) and np.abs(pooled).max() <= 1.0   # tanh
    # the tie: moving the embedding of token 5 (absent from the input) moves its logit everywhere
    threes = jnp.full((1, T), 3, jnp.int32)
    step = jax.random.normal(jax.random.key(1), (TINY.embed_dim,))
    bumped = {**params, "wte": {"embedding": params["wte"]["embedding"].at[5].add(step)}}
    changed = Bert(TINY).apply({"params": bumped}, threes)
    same = Bert(TINY).apply({"params": params}, threes)
    assert np.abs(np.asarray(changed - same)[0, :, 5]).min() > 1e-3
    np.testing.assert_allclose(changed[0, :, 6], same[0, :, 6], atol=1e-6)


def test_post_ln_normalises_the_embeddings_pre_ln_ends_with_a_norm():
    post = set(_params(TINY))
    pre = set(_params(dataclasses.replace(TINY, norm_position="pre")))
    assert "ln_emb" in post and "ln_f" not in post
    assert "ln_f" in pre and "ln_emb" not in pre


def test_every_parameter_has_logical_axis_names():
    abstract = jax.eval_shape(lambda: Bert(TINY).init(jax.random.key(0), TOKENS, output="all"))
    specs = jax.tree_util.tree_leaves(nn.get_partition_spec(abstract),
                                      is_leaf=lambda x: isinstance(x, P))
    leaves = jax.tree_util.tree_leaves(nn.unbox(abstract))
    assert len(specs) == len(leaves) > 30
    for spec, leaf in zip(specs, leaves):
        assert len(spec) == leaf.ndim and all(isinstance(n, str) for n in spec), spec


def test_bert_base_parameter_count_matches_the_paper():
    """Devlin et al. 2019, section 3: BERT-BASE has 110M parameters. Counted as Hugging Face's
    BertModel counts them (embeddings, 12 layers, pooler; no pre-training heads): 109,482,240,
    0.5 % under 110M. The tied MLM head adds its transform, LayerNorm and output bias."""
    abstract = jax.eval_shape(lambda: Bert(BERT_BASE).init(
        jax.random.key(0), jnp.zeros((1, 8), jnp.int32), output="all"))["params"]
    sizes = {k: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nn.unbox(v)))
             for k, v in abstract.items()}
    encoder = sum(v for k, v in sizes.items() if not k.startswith("mlm"))
    assert encoder == 109_482_240
    assert abs(encoder - 110e6) / 110e6 < 0.01
    heads = sum(v for k, v in sizes.items() if k.startswith("mlm"))
    assert heads == 768 * 768 + 768 + 2 * 768 + 30522


def test_unknown_output_is_refused():
    with pytest.raises(ValueError, match="output must be one of"):
        Bert(TINY).init(jax.random.key(0), TOKENS, output="cls")
