"""GPT model: causality, packing, KV cache, remat, dropout, bf16, param counts, logical axes."""
import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec as P

from pretrainx.models.transformer import GPT, TransformerConfig, flops_per_token, param_count

B, T = 2, 16
TINY = TransformerConfig(vocab_size=17, num_layers=2, num_heads=4, embed_dim=32, max_len=32)
RULES = (("batch", ("data", "fsdp")), ("vocab", "tensor"), ("embed", "fsdp"), ("mlp", "tensor"),
         ("heads", "tensor"), ("kv", None), ("length", None))


@functools.lru_cache(maxsize=None)
def _params(cfg):
  return jax.jit(GPT(cfg).init)(jax.random.key(0), jnp.zeros((B, T), jnp.int32))["params"]


@functools.lru_cache(maxsize=None)
def _fwd(cfg, train=False):
  """One jitted forward per config; positions / segment_ids optional (None retraces once)."""
  model = GPT(cfg)

  @jax.jit
  def f(params, tokens, positions=None, segment_ids=None, rng=None):
    rngs = {"dropout": rng} if rng is not None else {}
    return model.apply({"params": params}, tokens, positions=positions, segment_ids=segment_ids,
                       train=train, rngs=rngs)
  return f


def _tokens(seed=1, shape=(B, T)):
  return jnp.asarray(np.random.RandomState(seed).randint(0, TINY.vocab_size, size=shape), jnp.int32)


def test_from_config_ignores_extra_keys():
  cd = ml_collections.ConfigDict(dict(name="gpt", vocab_size=17, num_layers=2, num_heads=4,
                                      embed_dim=32, max_len=32, rope=True))
  cfg = TransformerConfig.from_config(cd)
  assert cfg == dataclasses.replace(TINY, rope=True)


def test_output_shape_dtype_and_causality():
  params, f = _params(TINY), _fwd(TINY)
  tokens = _tokens()
  base = f(params, tokens)
  assert base.shape == (B, T, TINY.vocab_size) and base.dtype == jnp.float32
  for j in (0, 5, T - 1):
    changed = f(params, tokens.at[:, j].set((tokens[:, j] + 1) % TINY.vocab_size))
    np.testing.assert_allclose(changed[:, :j], base[:, :j], atol=1e-6)  # no peeking ahead
    assert np.abs(changed[:, j] - base[:, j]).max() > 1e-4  # token j does affect position j


@pytest.mark.parametrize("rope", [False, True])
def test_segment_ids_block_cross_document_attention(rope):
  cfg = dataclasses.replace(TINY, rope=rope)
  params, f = _params(cfg), _fwd(cfg)
  n1 = 6
  packed = _tokens(2, (1, T))
  seg = jnp.asarray([[1] * n1 + [2] * (T - n1)], jnp.int32)
  pos = jnp.asarray([list(range(n1)) + list(range(T - n1))], jnp.int32)
  out = f(params, packed, pos, seg)
  # Each document alone, right-padded to T (causal, so the padding cannot matter).
  doc1 = f(params, packed.at[:, n1:].set(0))
  doc2 = f(params, jnp.concatenate([packed[:, n1:], jnp.zeros((1, n1), jnp.int32)], axis=1))
  np.testing.assert_allclose(out[:, :n1], doc1[:, :n1], atol=1e-5)
  np.testing.assert_allclose(out[:, n1:], doc2[:, :T - n1], atol=1e-5)
  # Sanity: without the segment mask document 2 does see document 1.
  leaky = f(params, packed, pos)
  assert np.abs(leaky[:, n1:] - doc2[:, :T - n1]).max() > 1e-4


@pytest.mark.parametrize("rope", [False, True])
def test_kv_cache_decode_matches_full_forward(rope):
  cfg = dataclasses.replace(TINY, rope=rope)
  params = _params(cfg)
  tokens = _tokens(3)
  full = _fwd(cfg)(params, tokens)
  model = GPT(cfg, decode=True)
  abstract = jax.eval_shape(model.init, jax.random.key(0), tokens[:, :1])
  cache = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), abstract["cache"])
  assert cache["h_0"]["attn"]["cached_key"].shape == (B, cfg.max_len, cfg.num_heads, cfg.head_dim)

  @jax.jit
  def step(cache, chunk):
    logits, mut = model.apply({"params": params, "cache": cache}, chunk, mutable=["cache"])
    return logits, mut["cache"]

  n_prefill = 5
  logits, cache = step(cache, tokens[:, :n_prefill])
  outs = [logits]
  for t in range(n_prefill, T):
    logits, cache = step(cache, tokens[:, t:t + 1])
    outs.append(logits)
  assert int(cache["h_1"]["attn"]["cache_index"]) == T and int(cache["cache_index"]) == T
  np.testing.assert_allclose(jnp.concatenate(outs, axis=1), full, atol=1e-5)


def test_remat_same_logits_and_grads():
  cfg = dataclasses.replace(TINY, remat=True)
  params, tokens = _params(TINY), _tokens(4)

  def loss(p, c):
    return GPT(c).apply({"params": p}, tokens).sum()
  g0 = jax.jit(jax.value_and_grad(functools.partial(loss, c=TINY)))(params)
  g1 = jax.jit(jax.value_and_grad(functools.partial(loss, c=cfg)))(params)
  np.testing.assert_allclose(g0[0], g1[0], rtol=1e-5)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), g0[1], g1[1])


def test_dropout_only_when_training():
  cfg = dataclasses.replace(TINY, dropout=0.5)
  params, tokens = _params(TINY), _tokens(5)
  eval_out = _fwd(cfg)(params, tokens)
  np.testing.assert_allclose(eval_out, _fwd(TINY)(params, tokens), atol=1e-6)
  train = _fwd(cfg, train=True)
  a = train(params, tokens, rng=jax.random.key(1))
  b = train(params, tokens, rng=jax.random.key(1))
  c = train(params, tokens, rng=jax.random.key(2))
  np.testing.assert_array_equal(a, b)
  assert np.abs(a - eval_out).max() > 1e-3 and np.abs(a - c).max() > 1e-3


def test_untied_head_has_own_params():
  cfg = dataclasses.replace(TINY, tie_embeddings=False, use_bias=False)
  shapes = jax.eval_shape(GPT(cfg).init, jax.random.key(0), jnp.zeros((1, 4), jnp.int32))["params"]
  shapes = nn.unbox(shapes)
  assert shapes["lm_head"]["kernel"].shape == (32, 17) and "bias" not in shapes["lm_head"]
  assert "bias" not in shapes["ln_f"] and "bias" not in shapes["h_0"]["mlp"]["fc"]


def test_bf16_compute_keeps_fp32_params_and_logits():
  cfg = dataclasses.replace(TINY, dtype="bfloat16")
  params = _params(cfg)
  assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(nn.unbox(params)))
  tokens = _tokens(6)
  out = _fwd(cfg)(params, tokens)
  ref = _fwd(TINY)(params, tokens)
  assert out.dtype == jnp.float32
  scale = float(np.abs(ref).max())
  assert float(np.abs(out - ref).max()) < 0.05 * scale + 1e-2, (np.abs(out - ref).max(), scale)


def _abstract(cfg):
  return jax.eval_shape(GPT(cfg).init, jax.random.key(0), jnp.zeros((1, 8), jnp.int32))


def test_param_counts_match_nanogpt():
  shakespeare = TransformerConfig(vocab_size=65, num_layers=6, num_heads=6, embed_dim=384,
                                  max_len=256, use_bias=False, tie_embeddings=True)
  n = param_count(_abstract(shakespeare)["params"])
  assert n == 10_646_784 and f"{n / 1e6:.2f}M" == "10.65M"
  gpt2 = TransformerConfig(vocab_size=50257, num_layers=12, num_heads=12, embed_dim=768, max_len=1024)
  v = _abstract(gpt2)
  assert param_count(v, non_embedding=False) == 124_439_808
  assert param_count(v) == 124_439_808 - 1024 * 768
  # 6N + 12 L H Q T
  assert flops_per_token(gpt2, 100, 1024) == 600 + 12 * 12 * 12 * 64 * 1024


def test_init_scales():
  p = nn.unbox(_params(dataclasses.replace(TINY, max_len=1024, embed_dim=64)))
  assert abs(float(p["wte"]["embedding"].std()) - 0.02) < 0.004
  assert abs(float(p["h_0"]["mlp"]["fc"]["kernel"].std()) - 0.02) < 0.003
  assert abs(float(p["h_0"]["mlp"]["proj"]["kernel"].std()) - 0.01) < 0.0015  # 0.02/sqrt(2*2)
  assert abs(float(p["h_0"]["attn"]["out"]["kernel"].std()) - 0.01) < 0.003
  assert float(np.abs(p["h_0"]["attn"]["query"]["bias"]).max()) == 0.0


def test_logical_axes_and_mesh_sharding():
  cfg = dataclasses.replace(TINY, tie_embeddings=False)
  model = GPT(cfg)
  tokens = _tokens(7, (8, T))
  abstract = jax.eval_shape(model.init, jax.random.key(0), tokens)
  specs = nn.get_partition_spec(abstract)
  leaves = jax.tree_util.tree_leaves(nn.unbox(abstract))
  spec_leaves = jax.tree_util.tree_leaves(specs, is_leaf=lambda x: isinstance(x, P))
  assert len(leaves) == len(spec_leaves) > 0
  for leaf, spec in zip(leaves, spec_leaves):
    assert isinstance(spec, P) and len(spec) == leaf.ndim and all(isinstance(n, str) for n in spec)

  mesh = Mesh(np.asarray(jax.devices()[:8]).reshape(2, 2, 2), ("data", "fsdp", "tensor"))
  shardings = nn.logical_to_mesh_sharding(specs, mesh, RULES)
  assert shardings["params"]["h_0"]["mlp"]["fc"]["kernel"].spec == P("fsdp", "tensor")
  assert shardings["params"]["h_0"]["attn"]["query"]["kernel"].spec == P("fsdp", "tensor", None)
  variables = jax.jit(model.init, out_shardings=shardings)(jax.random.key(0), tokens)
  kernel = variables["params"]["h_0"]["mlp"]["fc"]["kernel"]
  assert kernel.sharding.spec == P("fsdp", "tensor")
  assert kernel.addressable_shards[0].data.shape == (cfg.embed_dim // 2, 4 * cfg.embed_dim // 2)
  # Sharded forward equals an unsharded one with the same values.
  params = nn.unbox(variables["params"])
  logits = jax.jit(lambda p, x: model.apply({"params": p}, x))(params, tokens)
  ref = model.apply({"params": jax.device_get(params)}, tokens)
  np.testing.assert_allclose(logits, ref, atol=1e-5)
