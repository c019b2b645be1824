"""GPT model: causality, packing, KV cache, remat, dropout, bf16, param counts, logical axes.

Compiles are the cost here (~1-4 s each on CPU), so every test reuses one init and a
few jitted functions cached per config, all on the same (B, T) token shape.
"""
import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec as P

from pretrainx.models.gpt import GPT, flops_per_token, param_count
from pretrainx.models.attention import explicit_attention, resolve_attention
from pretrainx.models.transformer import TransformerConfig

B, T = 8, 16
TINY = TransformerConfig(vocab_size=17, num_layers=2, num_heads=4, embed_dim=32, max_len=32)
RULES = (("batch", ("data", "fsdp")), ("vocab", "tensor"), ("embed", "fsdp"), ("mlp", "tensor"),
         ("heads", "tensor"), ("kv", None), ("length", None))


@functools.lru_cache(maxsize=None)
def _base_params():
    return jax.jit(GPT(TINY).init)(jax.random.key(0), jnp.zeros((B, T), jnp.int32))["params"]


def _params(cfg):
    """TINY's (boxed) params, reused for variants with the same tree (saves an init compile each)."""
    assert dataclasses.replace(cfg, rope=False, dtype="float32", remat=False, dropout=0.0) == TINY
    params = dict(_base_params())
    if cfg.rope:
        del params["wpe"]  # the only structural difference
    return params


@functools.lru_cache(maxsize=None)
def _fwd(cfg, packed=False):
    """Jitted eval forward; packed=True takes (tokens, positions, segment_ids)."""
    model = GPT(cfg)
    if packed:
        return jax.jit(lambda p, x, pos, seg: model.apply({"params": p}, x, positions=pos,
                                                          segment_ids=seg))
    return jax.jit(lambda p, x: model.apply({"params": p}, x))


def _tokens(seed, shape=(B, T)):
    return np.random.RandomState(seed).randint(0, TINY.vocab_size, size=shape).astype(np.int32)


def test_from_config_ignores_extra_keys():
    cd = ml_collections.ConfigDict(dict(name="gpt", vocab_size=17, num_layers=2, num_heads=4,
                                        embed_dim=32, max_len=32, rope=True))
    assert TransformerConfig.from_config(cd) == dataclasses.replace(TINY, rope=True)


def test_output_shape_dtype_and_causality():
    tokens = np.repeat(_tokens(1, (1, T)), B, axis=0)
    js = (0, 5, 9, T - 1)
    for row, j in enumerate(js, start=1):  # row 0 is the original
        tokens[row, j] = (tokens[row, j] + 1) % TINY.vocab_size
    logits = np.asarray(_fwd(TINY)(_params(TINY), tokens))
    assert logits.shape == (B, T, TINY.vocab_size) and logits.dtype == np.float32
    for row, j in enumerate(js, start=1):
        np.testing.assert_allclose(logits[row, :j], logits[0, :j], atol=1e-6)  # no peeking ahead
        assert np.abs(logits[row, j] - logits[0, j]).max() > 1e-4  # token j does change position j


@pytest.mark.parametrize("rope", [False, True])
def test_segment_ids_block_cross_document_attention(rope):
    cfg = dataclasses.replace(TINY, rope=rope)
    params, n1 = _params(cfg), 6
    packed = _tokens(2, (1, T))[0]
    doc_pos = np.r_[np.arange(n1), np.arange(T - n1)].astype(np.int32)
    # row 0: two packed documents; row 1: same tokens and positions but one segment (leaky).
    tokens = np.repeat(packed[None], B, axis=0)
    seg = np.ones((B, T), np.int32)
    seg[0, n1:] = 2
    out = np.asarray(_fwd(cfg, packed=True)(params, tokens, np.tile(doc_pos, (B, 1)), seg))
    # Each document alone from position 0, right-padded to T (causal: padding cannot matter).
    alone = np.zeros((B, T), np.int32)
    alone[0, :n1] = packed[:n1]
    alone[1, :T - n1] = packed[n1:]
    ref = np.asarray(_fwd(cfg)(params, alone))
    np.testing.assert_allclose(out[0, :n1], ref[0, :n1], atol=1e-5)
    np.testing.assert_allclose(out[0, n1:], ref[1, :T - n1], atol=1e-5)
    assert np.abs(out[1, n1:] - ref[1, :T - n1]).max() > 1e-4  # without the mask doc 2 sees doc 1


@functools.lru_cache(maxsize=None)
def _decode_all(cfg, n_prefill):
    """Prefill n_prefill tokens in one call, then feed the rest one token per call (scan)."""
    model = GPT(cfg, decode=True)

    @jax.jit
    def run(params, tokens):
        abstract = jax.eval_shape(model.init, jax.random.key(0), tokens[:, :1])
        cache = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), abstract["cache"])
        variables = {"params": params, "cache": cache}
        first, mut = model.apply(variables, tokens[:, :n_prefill], mutable=["cache"])

        def step(cache, tok_B):
            logits, mut = model.apply({"params": params, "cache": cache}, tok_B[:, None],
                                      mutable=["cache"])
            return mut["cache"], logits[:, 0]
        cache, rest = jax.lax.scan(step, mut["cache"], tokens[:, n_prefill:].T)
        return jnp.concatenate([first, rest.transpose(1, 0, 2)], axis=1), cache
    return run


@pytest.mark.parametrize("rope", [False, True])
def test_kv_cache_decode_matches_full_forward(rope):
    cfg = dataclasses.replace(TINY, rope=rope)
    params, tokens = _params(cfg), _tokens(3)
    full = _fwd(cfg)(params, tokens)
    decoded, cache = _decode_all(cfg, 5)(params, tokens)
    assert cache["h_0"]["attn"]["cached_key"].shape == (B, cfg.max_len, cfg.num_heads, cfg.head_dim)
    assert int(cache["h_1"]["attn"]["cache_index"]) == T and int(cache["cache_index"]) == T
    np.testing.assert_allclose(decoded, full, atol=1e-5)


def test_remat_wraps_blocks_and_keeps_logits():
    cfg = dataclasses.replace(TINY, remat=True)
    params, tokens = _params(TINY), _tokens(4)
    np.testing.assert_allclose(_fwd(cfg)(params, tokens), _fwd(TINY)(params, tokens), atol=1e-6)

    def loss(p, c):
        return GPT(c).apply({"params": p}, tokens, train=True).sum()
    # Tracing the grad (no compile) shows one checkpoint per block with remat, none without.
    jaxpr = str(jax.make_jaxpr(jax.grad(functools.partial(loss, c=cfg)))(params))
    assert jaxpr.count("checkpoint") + jaxpr.count("remat") >= cfg.num_layers
    jaxpr = str(jax.make_jaxpr(jax.grad(functools.partial(loss, c=TINY)))(params))
    assert "checkpoint" not in jaxpr and "remat" not in jaxpr


@pytest.mark.slow      # 15-35 s on 2 cores: out of the -m 'not slow' set's 10 min
@pytest.mark.parametrize("dtype,atol", [("float32", 0.0), ("bfloat16", 2e-2)])
def test_onehot_embedding_lookup_equals_the_gather(dtype, atol):
    """The one-hot lookup (the GPU fast path for small tables) gives the gather's logits and
    gradients: exactly in float32, to bf16 rounding in bfloat16 (the gather's gradient sums the
    rows in bf16, the matmul accumulates in float32)."""
    params, tokens = _params(TINY), _tokens(6)
    targets = np.roll(tokens, -1, axis=1)

    def value_and_grad(lookup):
        model = GPT(dataclasses.replace(TINY, dtype=dtype, embed_lookup=lookup))
        def loss(p):
            logits = model.apply({"params": p}, tokens)
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), targets[..., None], -1))
        # The jaxpr says which path ran: a gather's gradient is a scatter-add (the loss's
        # take_along_axis adds one of its own).
        jaxpr = str(jax.make_jaxpr(jax.grad(loss))(params))
        return jax.jit(jax.value_and_grad(loss))(params), jaxpr.count("scatter-add") - 1

    (loss_g, grads_g), scatter_g = value_and_grad("gather")
    (loss_o, grads_o), scatter_o = value_and_grad("onehot")
    (loss_m, grads_m), scatter_m = value_and_grad("matmul_grad")
    (loss_a, _), scatter_a = value_and_grad("auto")         # 17 and 32 rows: one-hot
    assert (scatter_g, scatter_o, scatter_m, scatter_a) == (2, 0, 0, 0)    # wte and wpe
    assert float(loss_m) == float(loss_g)                   # the same gather forward
    assert abs(float(loss_g) - float(loss_o)) <= max(atol, 1e-7) and float(loss_a) == float(loss_o)
    for g, o, m in zip(jax.tree.leaves(grads_g), jax.tree.leaves(grads_o), jax.tree.leaves(grads_m)):
        for fast in (o, m):
            np.testing.assert_allclose(np.asarray(fast, np.float32), np.asarray(g, np.float32),
                                       atol=atol * float(np.max(np.abs(g))) + 1e-7, rtol=0)
    # Ids past the table: zeros, where the gather would give NaN rows.
    out = GPT(dataclasses.replace(TINY, embed_lookup="onehot")).apply(
        {"params": params}, np.full((1, T), TINY.vocab_size + 3, np.int32))
    assert np.all(np.isfinite(out))


def test_auto_lookup_is_one_hot_for_small_tables_and_on_gpus():
    from pretrainx.models.transformer import lookup_path
    def onehot(*args):
        return lookup_path(*args) == "onehot"
    assert onehot("auto", 65, 16384, 4, "cpu") and onehot("auto", 4096, 10**6, 2, "cpu")
    assert not onehot("auto", 50304, 32768, 2, "cpu")      # a large table on a CPU: gather
    assert onehot("auto", 50304, 32 * 1024, 2, "gpu")       # GPT-2's: 3.1 GiB of one-hot
    assert not onehot("auto", 256000, 64 * 4096, 2, "gpu")  # 125 GiB would not fit: gather
    assert onehot("onehot", 10**6, 10**6, 4, "cpu") and not onehot("gather", 2, 1, 4, "gpu")
    assert lookup_path("matmul_grad", 2, 1, 4, "cpu") == "matmul_grad"


def test_compute_dtype_logits_give_the_float32_loss_to_bf16_rounding():
    """logits_dtype="compute" (bf16 logits; the loss upcasts inside its reductions, as
    nanoGPT's autocast does) changes loss and gradients by bf16 rounding only."""
    from pretrainx.objectives import losses
    params, tokens = _params(TINY), _tokens(8)
    targets = np.roll(tokens, -1, axis=1)
    out = {}
    for logits_dtype in ("float32", "compute"):
        model = GPT(dataclasses.replace(TINY, dtype="bfloat16", logits_dtype=logits_dtype))
        def loss(p):
            logits = model.apply({"params": p}, tokens)
            assert logits.dtype == (jnp.float32 if logits_dtype == "float32" else jnp.bfloat16)
            return losses.cross_entropy(logits, targets)[0]
        out[logits_dtype] = jax.jit(jax.value_and_grad(loss))(params)
    (l32, g32), (l16, g16) = out["float32"], out["compute"]
    assert abs(float(l32) - float(l16)) < 1e-2 * float(l32)
    for a, b in zip(jax.tree.leaves(g32), jax.tree.leaves(g16)):
        np.testing.assert_allclose(b, a, atol=3e-2 * float(np.max(np.abs(a))) + 1e-6, rtol=0)


def test_embed_lookup_is_checked():
    with pytest.raises(ValueError, match="embed_lookup"):
        dataclasses.replace(TINY, embed_lookup="dense")


@pytest.mark.parametrize("field", ["dropout", "attention_dropout"])
def test_dropout_only_when_training(field):
    cfg = dataclasses.replace(TINY, **{field: 0.5})
    model, params, tokens = GPT(cfg), _params(TINY), _tokens(5)

    @jax.jit
    def f(rng):
        train = lambda r: model.apply({"params": params}, tokens, train=True, rngs={"dropout": r})
        return model.apply({"params": params}, tokens), train(rng), train(rng), train(rng + 1)
    rng = jax.random.PRNGKey(1)
    evaluated, a, b, c = (np.asarray(x) for x in f(rng))
    np.testing.assert_allclose(evaluated, _fwd(TINY)(params, tokens), atol=1e-6)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - evaluated).max() > 1e-3 and np.abs(a - c).max() > 1e-3


def test_explicit_attention_matches_dot_product_attention():
    rs = np.random.RandomState(0)
    q, k, v = (jnp.asarray(rs.randn(2, 6, 3, 8), jnp.float32) for _ in range(3))
    fused = jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation="xla")
    np.testing.assert_allclose(explicit_attention(q, k, v, None, True), fused, atol=1e-5)
    mask = jnp.asarray(rs.rand(2, 1, 6, 6) > 0.5) | jnp.eye(6, dtype=bool)  # every row keeps one
    fused = jax.nn.dot_product_attention(q, k, v, mask=mask, implementation="xla")
    np.testing.assert_allclose(explicit_attention(q, k, v, mask, False), fused, atol=1e-5)


def test_attention_dropout_acts_on_the_weights():
    # q = k = 0 gives uniform causal weights, so query t averages v[0..t]; dropping key 0 and
    # scaling the rest by 2 (inverted dropout at p = 0.5) is then easy to do by hand.
    T_, v_S = 4, jnp.arange(1.0, 5.0)          # v = 1, 2, 3, 4
    q = k = jnp.zeros((1, T_, 1, 1))
    v = v_S.reshape(1, T_, 1, 1)
    keep_S = jnp.array([0.0, 2.0, 2.0, 2.0])
    out = explicit_attention(q, k, v, None, True, lambda p: p * keep_S)[0, :, 0, 0]
    # t=0: (0*1)/1 = 0;  t=1: 2*2/2 = 2;  t=2: 2*(2+3)/3;  t=3: 2*(2+3+4)/4
    np.testing.assert_allclose(out, [0.0, 2.0, 10 / 3, 4.5], rtol=1e-6)


def test_attention_dropout_rate_is_checked():
    with pytest.raises(ValueError, match="attention_dropout"):
        dataclasses.replace(TINY, attention_dropout=1.0)


def test_auto_attention_picks_cudnn_only_where_it_applies():
    gpu_bf16 = dict(backend="gpu", dtype="bfloat16", head_dim=64, masked=False, decode=False)
    assert resolve_attention("auto", **gpu_bf16) == "cudnn"
    for change in (dict(backend="cpu"), dict(backend="tpu"), dict(dtype="float32"),
                   dict(head_dim=256), dict(head_dim=36), dict(masked=True), dict(decode=True)):
        assert resolve_attention("auto", **{**gpu_bf16, **change}) == "xla", change
    assert resolve_attention("cudnn", **{**gpu_bf16, "backend": "cpu"}) == "cudnn"  # as asked
    assert resolve_attention("xla", **gpu_bf16) == "xla"


def test_auto_attention_falls_back_to_xla_where_cudnn_is_refused(monkeypatch):
    # On this CPU jax refuses cuDNN while tracing ("cuDNN is not detected"): the same refusal
    # an old cuDNN or an unsupported shape gets on a GPU. "auto" falls back; "cudnn" raises.
    from pretrainx.models import attention
    monkeypatch.setattr(attention, "resolve_attention", lambda choice, **_: "cudnn")
    params, tokens = _params(TINY), _tokens(7)
    logits = GPT(TINY).apply({"params": params}, tokens)
    np.testing.assert_allclose(logits, _fwd(TINY)(params, tokens), atol=1e-6)
    with pytest.raises(RuntimeError, match="cuDNN"):
        GPT(dataclasses.replace(TINY, attention="cudnn")).apply({"params": params}, tokens)


def test_untied_head_and_no_bias():
    cfg = dataclasses.replace(TINY, tie_embeddings=False, use_bias=False)
    shapes = nn.unbox(jax.eval_shape(GPT(cfg).init, jax.random.key(0), jnp.zeros((1, 4), jnp.int32)))
    p = shapes["params"]
    assert p["lm_head"]["kernel"].shape == (32, 17) and "bias" not in p["lm_head"]
    assert "bias" not in p["ln_f"] and "bias" not in p["h_0"]["mlp"]["fc"]
    assert "bias" not in p["h_0"]["attn"]["query"] and "scale" in p["h_0"]["ln_1"]


def test_bf16_compute_keeps_fp32_params_and_logits():
    cfg = dataclasses.replace(TINY, dtype="bfloat16")
    abstract = jax.eval_shape(GPT(cfg).init, jax.random.key(0), jnp.zeros((1, 4), jnp.int32))
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(nn.unbox(abstract)))
    params, tokens = _params(cfg), _tokens(6)
    out = np.asarray(_fwd(cfg)(params, tokens))
    ref = np.asarray(_fwd(TINY)(params, tokens))
    assert out.dtype == np.float32
    err, scale = np.abs(out - ref).max(), np.abs(ref).max()
    assert 0 < err < 0.05 * scale + 1e-2, (err, scale)


def _abstract(cfg):
    return jax.eval_shape(GPT(cfg).init, jax.random.key(0), jnp.zeros((1, 8), jnp.int32))


def test_param_counts_match_nanogpt():
    shakespeare = TransformerConfig(vocab_size=65, num_layers=6, num_heads=6, embed_dim=384,
                                    max_len=256, use_bias=False, tie_embeddings=True)
    n = param_count(_abstract(shakespeare)["params"])
    assert n == 10_646_784 and f"{n / 1e6:.2f}M" == "10.65M"  # nanoGPT: "number of parameters: 10.65M"
    gpt2 = TransformerConfig(vocab_size=50257, num_layers=12, num_heads=12, embed_dim=768, max_len=1024)
    v = _abstract(gpt2)
    assert param_count(v, non_embedding=False) == 124_439_808
    assert param_count(v["params"]) == 124_439_808 - 1024 * 768
    assert flops_per_token(gpt2, 100, 1024) == 6 * 100 + 12 * 12 * 12 * 64 * 1024


def test_init_scales():
    p = jax.device_get(nn.unbox(_params(TINY)))
    assert abs(p["wte"]["embedding"].std() - 0.02) < 0.004
    assert abs(p["h_0"]["mlp"]["fc"]["kernel"].std() - 0.02) < 0.002
    assert abs(p["h_0"]["attn"]["query"]["kernel"].std() - 0.02) < 0.003
    assert abs(p["h_0"]["mlp"]["proj"]["kernel"].std() - 0.01) < 0.001  # 0.02/sqrt(2*num_layers)
    assert abs(p["h_0"]["attn"]["out"]["kernel"].std() - 0.01) < 0.0015
    assert np.abs(p["h_0"]["attn"]["query"]["bias"]).max() == 0.0
    assert (p["ln_f"]["scale"] == 1).all()


def test_logical_axes_and_mesh_sharding():
    cfg = dataclasses.replace(TINY, tie_embeddings=False, vocab_size=18)  # vocab divisible by 'tensor'
    model, tokens = GPT(cfg), _tokens(7)
    abstract = jax.eval_shape(model.init, jax.random.key(0), tokens)
    specs = nn.get_partition_spec(abstract)
    leaves = jax.tree_util.tree_leaves(nn.unbox(abstract))
    spec_leaves = jax.tree_util.tree_leaves(specs, is_leaf=lambda x: isinstance(x, P))
    assert len(leaves) == len(spec_leaves) == 2 * 16 + 6
    for leaf, spec in zip(leaves, spec_leaves):
        assert isinstance(spec, P) and len(spec) == leaf.ndim and all(isinstance(n, str) for n in spec)

    mesh = Mesh(np.asarray(jax.devices()[:8]).reshape(2, 2, 2), ("data", "fsdp", "tensor"))
    shardings = nn.logical_to_mesh_sharding(specs, mesh, RULES)
    assert shardings["params"]["h_0"]["mlp"]["fc"]["kernel"].spec == P("fsdp", "tensor")
    assert shardings["params"]["h_0"]["attn"]["query"]["kernel"].spec == P("fsdp", "tensor", None)
    variables = jax.jit(model.init, out_shardings=shardings)(jax.random.key(0), tokens)
    params = nn.unbox(variables["params"])
    kernel = params["h_0"]["mlp"]["fc"]["kernel"]
    assert kernel.sharding.spec == P("fsdp", "tensor")
    assert kernel.addressable_shards[0].data.shape == (cfg.embed_dim // 2, 4 * cfg.embed_dim // 2)
    assert params["lm_head"]["kernel"].sharding.spec == P("fsdp", "tensor")
    # A forward pass runs on the sharded (still boxed) variables.
    logits = jax.jit(model.apply)(variables, tokens)
    assert logits.shape == (B, T, 18) and np.isfinite(np.asarray(logits)).all()


# ---- attention kinds, shown by gradients ------------------------------------------------------

def _dependence(kind, **mask_args):
    """[i, j]: does block output i depend on block input j? (the Jacobian's nonzero pattern)"""
    from pretrainx.models.blocks import Block
    from pretrainx.models.transformer import attention_mask
    cfg = dataclasses.replace(TINY, attention_kind=kind)
    L = 6
    x = jnp.asarray(np.random.RandomState(0).randn(1, L, cfg.embed_dim), jnp.float32)
    positions = jnp.arange(L)[None]
    mask = attention_mask(kind, L, **mask_args)
    block = Block(cfg)
    params = block.init(jax.random.key(0), x, positions, mask, False)
    jac = jax.jacobian(lambda x: block.apply(params, x, positions, mask, False))(x)
    return np.asarray(jnp.abs(jac[0, :, :, 0]).sum(axis=(1, 3)) > 0)


I, J = np.arange(6)[:, None], np.arange(6)[None, :]


@pytest.mark.parametrize("kind,args,expected", [
    ("causal", {}, J <= I),
    ("bidirectional", {}, np.ones((6, 6), bool)),
    ("prefix", {"prefix_length": jnp.array([3])}, (J <= I) | (J < 3)),
    ("prefix", {"prefix_mask": jnp.array([[1, 1, 0, 0, 1, 0]])},     # any set of positions
     (J <= I) | np.isin(J, [0, 1, 4])),
    ("bidirectional", {"segment_ids": jnp.array([[1, 1, 1, 2, 2, 2]])}, (I < 3) == (J < 3)),
    ("bidirectional", {"input_mask": jnp.array([[1, 1, 1, 1, 1, 0]])}, (J < 5) | (I == J)),
    ("causal", {"segment_ids": jnp.array([[1, 1, 2, 2, 2, 0]])}, (J <= I) & ((I < 2) == (J < 2))
     & ((I == 5) == (J == 5))),
], ids=["causal", "bidirectional", "prefix_length", "prefix_mask", "segments", "padding",
        "causal_segments"])
def test_attention_kind_shown_by_gradients(kind, args, expected):
    np.testing.assert_array_equal(_dependence(kind, **args), expected)


def test_attention_kind_needs_its_prefix_and_only_it():
    from pretrainx.models.transformer import attention_mask
    with pytest.raises(ValueError, match="needs a prefix_length"):
        attention_mask("prefix", 4)
    with pytest.raises(ValueError, match="attention_kind is 'causal'"):
        attention_mask("causal", 4, prefix_length=jnp.array([2]))
    with pytest.raises(ValueError, match="attention_kind must be one of"):
        dataclasses.replace(TINY, attention_kind="sideways")


def test_prefix_gpt_and_headless_features():
    cfg = dataclasses.replace(TINY, attention_kind="prefix")
    params, tokens = _params(TINY), _tokens(8)
    changed = tokens.copy()
    changed[:, 2] = (changed[:, 2] + 1) % TINY.vocab_size          # a prefix token (prefix 4)
    run = jax.jit(lambda p, x: GPT(cfg).apply({"params": p}, x, prefix_length=jnp.full((B,), 4)))
    a, b = np.asarray(run(params, tokens)), np.asarray(run(params, changed))
    assert np.abs(a[:, :2] - b[:, :2]).max() > 1e-4      # earlier prefix positions see it
    later = tokens.copy()
    later[:, 6] = (later[:, 6] + 1) % TINY.vocab_size           # after the prefix: causal
    c = np.asarray(run(params, later))
    np.testing.assert_allclose(c[:, :6], a[:, :6], atol=1e-6)
    assert np.abs(c[:, 6] - a[:, 6]).max() > 1e-4
    features = GPT(TINY).apply({"params": params}, tokens, features_only=True)
    assert features.shape == (B, T, TINY.embed_dim) and features.dtype == jnp.float32
    logits = np.asarray(features) @ np.asarray(nn.unbox(params)["wte"]["embedding"]).T
    np.testing.assert_allclose(logits, _fwd(TINY)(params, tokens), atol=1e-4)   # tied head
