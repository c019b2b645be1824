"""LoRA (core/lora.py): a step moves the adapters alone and the base stays bit-identical, the
model at step 0 is the base model, Adam's moments exist for the adapters only, the merge is the
unmerged computation x W + s (x A) B, rank 0 is the old state exactly; with reward and PPO
(their own frozen trees kept) and with classify the heads train in full; configs/llama/dpo_lora.py:smoke chained
on a Llama made by transformers learns, and its export holds the merged weights."""
import json
import math
import os

import jax
import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from pretrainx.config.check import ConfigError
from pretrainx.core import lora, sharding, train

import toy_objectives as toys
from conftest import SHARED_DATA

RANK = 4


def _steps(built, n):
    state, losses = built.state, []
    for i in range(n):
        state, m = built.step_fn(state, sharding.put_batch(built.host_batch(built.dataset.train, i),
                                                           built.mesh))
        losses.append(float(jax.device_get(m)["loss"]))
    return state, losses


def _flat(tree):
    return traverse_util.flatten_dict(jax.device_get(tree), sep="/")


@pytest.fixture(scope="module")
def runs():
    """The same tiny GPT and data, trained in full and through rank-4 adapters (same seed)."""
    full = train.setup(toys.config("clm", **{"optimizer.lr": 1e-2}))
    adapted = train.setup(toys.config("clm", **{"optimizer.lr": 1e-2, "lora.rank": RANK}))
    return full, adapted


def test_a_step_moves_the_adapters_alone_from_the_base_model(runs):
    full, adapted = runs
    base = _flat(adapted.state.frozen[lora.BASE])
    # the base is the full run's initial model, and with B = 0 the first loss is the base's
    initial = _flat(full.state.params)
    assert base.keys() == initial.keys()
    for path in base:
        np.testing.assert_array_equal(base[path], initial[path], err_msg=path)
    adapters0 = _flat(adapted.state.params)
    state, losses = _steps(adapted, 3)
    _, full_losses = _steps(full, 1)
    np.testing.assert_allclose(losses[0], full_losses[0], rtol=1e-6)
    assert losses[-1] < losses[0]
    after = _flat(state.frozen[lora.BASE])
    for path in base:                                     # bit-identical
        np.testing.assert_array_equal(after[path], base[path], err_msg=path)
    adapters = _flat(state.params)
    assert adapters.keys() == adapters0.keys() and all(p.startswith("adapters/") for p in adapters)
    for path in adapters:
        assert np.abs(adapters[path] - adapters0[path]).max() > 0, path
    assert all(not np.any(adapters0[p]) for p in adapters0 if p.endswith("/b"))   # B starts at 0


def test_optimizer_state_holds_adapter_sized_arrays_only(runs):
    full, adapted = runs
    m = adapted.state.params["adapters"]
    c = toys.config("clm")
    width, heads = c.model.embed_dim, c.model.num_heads * (c.model.embed_dim // c.model.num_heads)
    kernels = 4 * c.model.num_layers                      # attention's q, k, v, out per layer
    adapter_count = kernels * RANK * (width + heads)      # A: in x r, B: r x out
    assert sum(x.size for x in jax.tree.leaves(m)) == adapter_count

    def arrays(opt_state):      # Adam's moments; the step counters are scalars
        return [x for x in jax.tree.leaves(opt_state) if x.ndim > 0]
    moments = arrays(adapted.state.opt_state)
    assert len(moments) == 2 * len(jax.tree.leaves(m))
    assert sorted(x.shape for x in moments) == sorted(2 * [x.shape for x in jax.tree.leaves(m)])
    assert sum(x.size for x in moments) == 2 * adapter_count
    full_count = sum(x.size for x in jax.tree.leaves(full.state.params))
    assert sum(x.size for x in arrays(full.state.opt_state)) == 2 * full_count
    print(f"optimizer state: {2 * adapter_count} numbers with LoRA r={RANK}, "
          f"{2 * full_count} for the full fine-tune")
    assert 2 * adapter_count < 0.2 * 2 * full_count


def test_rank_zero_is_the_old_state(runs):
    full, _ = runs
    state = full.state
    assert state.lora is None and lora.BASE not in state.frozen
    objective_tree = jax.eval_shape(full.objective.init, jax.random.PRNGKey(0))
    assert (jax.tree.structure(jax.tree.map(lambda x: 0, state.params))
            == jax.tree.structure(jax.tree.map(lambda x: 0, objective_tree,
                                               is_leaf=lambda x: hasattr(x, "names"))))
    assert state.model_params() is state.params and state.eval_params() is state.params


@pytest.mark.parametrize("names, shape, contract", [
    (("embed", "heads", "kv"), (6, 2, 3), "bi,ihk->bhk"),       # q/k/v: embed in
    (("heads", "kv", "embed"), (2, 3, 6), "bhk,hke->be"),        # attention out: heads x kv in
    (("mlp", "embed"), (5, 6), "bi,ie->be")])
def test_merged_kernel_computes_what_the_unmerged_adapters_do(names, shape, contract):
    spec = lora.LoraSpec(rank=2, alpha=3.0, targets=("kernel",), train=())
    kernel = jax.random.normal(jax.random.PRNGKey(0), shape)
    params = {"layer": {"kernel": nn.LogicallyPartitioned(kernel, names)}}
    trainable, base = lora.split(params, spec, jax.random.PRNGKey(1))
    k = lora.input_axes(names)
    made = trainable["adapters"]["layer"]["kernel"]       # the kernel's names, rank unsharded
    assert made["a"].names == (*names[:k], None) and made["b"].names == (None, *names[k:])
    assert made["a"].value.shape == (*shape[:k], 2) and not np.any(made["b"].value)
    base = nn.unbox(base)
    a = jax.random.normal(jax.random.PRNGKey(2), (*shape[:k], 2))
    b = jax.random.normal(jax.random.PRNGKey(3), (2, *shape[k:]))
    trainable = {"adapters": {"layer": {"kernel": {"a": a, "b": b}}}}
    merged = lora.merge(trainable, base, spec.scale)["layer"]["kernel"]
    x = jax.random.normal(jax.random.PRNGKey(4), (7, *shape[:k]))
    low_rank = jnp.tensordot(x, a, axes=k) @ b.reshape(2, -1)
    unmerged = jnp.einsum(contract, x, kernel).reshape(7, -1) + spec.scale * low_rank
    np.testing.assert_allclose(jnp.einsum(contract, x, merged).reshape(7, -1), unmerged,
                               rtol=1e-5, atol=1e-5)


def test_adapters_are_sharded_as_their_kernel_on_an_fsdp_x_tensor_mesh():
    built = train.setup(toys.config("clm", **{"lora.rank": RANK, "mesh.data": 1, "mesh.fsdp": 4,
                                              "mesh.tensor": 2, "data.max_bytes": 20_000}))
    kernel = built.state.frozen[lora.BASE]["h_0"]["attn"]["query"]["kernel"]  # (embed, heads, kv)
    pair = built.state.params["adapters"]["h_0"]["attn"]["query"]["kernel"]
    assert tuple(kernel.sharding.spec) == ("fsdp", "tensor", None)
    assert tuple(pair["a"].sharding.spec) == ("fsdp", None)          # (embed, rank)
    assert tuple(pair["b"].sharding.spec) == (None, "tensor", None)  # (rank, heads, kv)
    moments = [x for x in jax.tree.leaves(built.state.opt_state) if x.shape == pair["b"].shape]
    assert moments and all(m.sharding == pair["b"].sharding for m in moments)   # Adam's too


def test_bad_settings_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="match no kernel"):
        train.setup(toys.config("clm", **{"lora.rank": 2, "lora.targets": ("nothing_here",)}))
    with pytest.raises(ConfigError, match="lora.rank must be >= 0"):
        train.setup(toys.config("clm", **{"lora.rank": -1}))
    with pytest.raises(ConfigError, match="not a regular expression"):
        train.setup(toys.config("clm", **{"lora.rank": 2, "lora.targets": ("(",)}))


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["reward", "ppo"])
def test_heads_train_in_full_beside_the_objectives_own_frozen_trees(objective, tmp_path):
    from test_rlhf_objectives import pairs_config, ppo_config, write_pairs
    lora_fields = {"lora.rank": 2, "optimizer.lr": 1e-2}
    if objective == "ppo":
        c = ppo_config(**{"ppo.eos": " ", **lora_fields})
    else:
        c = pairs_config(objective, write_pairs(tmp_path / "pairs.jsonl"), **lora_fields)
    built = train.setup(c)
    frozen0 = _flat(built.state.frozen)
    params0 = _flat(built.state.params)
    heads = [p for p in params0 if p.startswith("full/")]
    assert heads and all("head/" in p for p in heads)
    if objective == "ppo":           # its reference and reward model stay beside the base
        assert {p.split("/")[0] for p in frozen0} == {lora.BASE, "reference", "reward"}
    state, losses = _steps(built, 2)
    assert all(math.isfinite(x) for x in losses)
    frozen = _flat(state.frozen)
    for path in frozen0:
        np.testing.assert_array_equal(frozen[path], frozen0[path], err_msg=path)
    params = _flat(state.params)
    # a zero reward head passes no gradient to the trunk at step 1, and A moves once B is not
    # zero: after 2 steps the head kernels and every B have moved (a pair loss has no gradient
    # for a reward head's bias)
    assert all(np.abs(params[p] - params0[p]).max() > 0 for p in params
               if p.endswith("/b") or p.startswith("full/") and p.endswith("head/kernel"))


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason="../shared/data (Tiny Shakespeare) absent")
def test_classify_trains_its_head_and_the_adapters_over_a_frozen_encoder():
    """configs/finetune/speakers_bert.py:smoke through rank-2 adapters: the 10-way head trains in
    full, the encoder (its pooler too, as PEFT leaves a sequence classifier's) stays frozen."""
    from pretrainx.config import load as config_lib
    c = config_lib.override(config_lib.load(os.path.join(toys.ROOT, "configs/finetune/speakers_bert.py:smoke")),
                            {"lora.rank": 2, "optimizer.lr": 1e-2, "optimizer.warmup_steps": 1,
                             "batch_size": 8, "mesh.data": 1, "train.progress": False,
                             "model.num_layers": 1, "model.embed_dim": 32, "model.max_len": 32,
                             "data.seq_len": 32})
    built = train.setup(c)
    params0, frozen0 = _flat(built.state.params), _flat(built.state.frozen)
    assert sorted(p for p in params0 if p.startswith("full/")) == ["full/head/bias", "full/head/kernel"]
    assert any("/pooler/" in p for p in frozen0) and any("/attn/query/kernel" in p for p in frozen0)
    state, losses = _steps(built, 3)
    assert all(math.isfinite(x) for x in losses)
    frozen, params = _flat(state.frozen), _flat(state.params)
    for path in frozen0:
        np.testing.assert_array_equal(frozen[path], frozen0[path], err_msg=path)
    moved = {p for p in params if np.abs(params[p] - params0[p]).max() > 0}
    assert {"full/head/kernel", "full/head/bias"} <= moved
    assert all(p in moved for p in params if p.endswith("/a") or p.endswith("/b"))


def _logged(workdir, key):
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    return [r[key] for r in rows if key in r]


@pytest.mark.slow
def test_dpo_smoke_chained_on_an_imported_llama_then_exported_merged(tmp_path):
    """configs/llama/dpo_lora.py:smoke on a random Llama made by transformers: import-hf, DPO
    through rank-8 adapters (the imported weights are the frozen base and the reference, never
    changed), then export-hf: transformers computes the merged model's logits."""
    from transformers import AutoModelForCausalLM
    from pretrainx import main
    from pretrainx.core import inference, init_from
    from pretrainx.models import gpt, transformer
    from tests import hf_checkpoints as hfc
    hf_dir, imported, dpo, out = (str(tmp_path / n) for n in ("hf", "imported", "dpo", "out"))
    model = hfc.make_model("llama", hf_dir, vocab_size=512)    # the smoke's rows (a BPE fits)
    assert main.cli(["import-hf", hf_dir, "--workdir", imported]) == 0
    assert main.cli(["train", "--config", os.path.join(toys.ROOT, "configs/llama/dpo_lora.py:smoke"),
                     "--workdir", dpo, f"--config.init_from.workdir={imported}",
                     f"--config.data.tokenizer={imported}", "--config.mesh.data=1",
                     "--config.train.progress=False"]) == 0
    margins, accuracy = _logged(dpo, "train/reward_margin"), _logged(dpo, "train/accuracy")
    print(f"train reward margin {margins}, accuracy {accuracy}")
    assert margins[-1] > max(margins[0], 0.1) and accuracy[-1] > accuracy[0]

    weights = init_from.read_source(init_from.InitFrom(imported))[0]["params"]
    frozen = init_from.read_source(init_from.InitFrom(dpo, mapping=(("frozen", "frozen"),)))[0]
    for tree in ("reference", lora.BASE):
        jax.tree.map(np.testing.assert_array_equal, frozen["frozen"][tree], weights)

    assert main.cli(["export-hf", "--workdir", dpo, "--out", out]) == 0
    _, ctx, config = inference.load_trained_run(dpo, "latest")
    tokens = np.random.default_rng(0).integers(0, hfc.VOCAB, (2, 24))
    ours = np.asarray(gpt.GPT(transformer.TransformerConfig.from_config(config.model)).apply(
        {"params": ctx.params}, tokens))
    exported = hfc.reference_logits(AutoModelForCausalLM.from_pretrained(out), tokens)
    err = float(np.max(np.abs(exported - ours)) / np.max(np.abs(ours)))
    moved = float(np.max(np.abs(exported - hfc.reference_logits(model, tokens))))
    print(f"export vs the unmerged run: max relative difference {err:.1e}; "
          f"the adapters moved the logits by up to {moved:.3f}")
    assert err < 1e-5 and moved > 1e-2


@pytest.mark.slow
def test_the_next_stage_loads_a_lora_run_merged(tmp_path):
    """init_from a LoRA run gives the model it trained (adapters merged), into a full run's params
    and into another LoRA run's base."""
    from pretrainx.core import inference, init_from
    first = str(tmp_path / "lora")
    train.run(toys.config("clm", **{"lora.rank": RANK, "optimizer.lr": 1e-2}), first)
    trained = _flat(inference.load_trained_run(first, "latest")[1].params)
    opts = init_from.InitFrom(first)
    for rank in (0, 2):
        built = train.setup(toys.config("clm", **{"lora.rank": rank}))
        state = init_from.apply(built.state, built.objective, opts)
        loaded = _flat(state.params if rank == 0 else state.frozen[lora.BASE])
        assert loaded.keys() == trained.keys()
        for path in trained:
            np.testing.assert_array_equal(loaded[path], trained[path], err_msg=path)
