"""The runner contract (objectives/base.py, step.py): weighted means, ``prepare``, the update
override, the auxiliary state, FLOPs per batch, and building an objective in one step."""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from pretrainx.core import evaluate

from pretrainx.run import metrics

from pretrainx.core import optim

from pretrainx.core import sharding

from pretrainx.core import step as step_lib

from pretrainx.core import train
from pretrainx.objectives.base import DENOMINATOR, StepContext

import toy_objectives as toys
from test_train import losses


# ---- weighted means -------------------------------------------------------------------------

def packed_config(**updates):
    """A causal LM on lines of the standard library's source packed greedily into rows: the rows
    carry very different numbers of weighted tokens."""
    return toys.config("clm", **{"data.doc_separator": "\n", "data.packing": "greedy",
                                 "data.split": "documents", "batch_size": 8, "data.seq_len": 64,
                                 "model.max_len": 64, **updates})


@pytest.fixture(scope="module")
def packed():
    built = train.setup(packed_config())
    batch = built.host_batch(built.dataset.train, 0)
    return built, batch


def test_packed_rows_carry_different_token_counts(packed):
    _, batch = packed
    per_micro_batch = [batch["weights"][k::2].sum() for k in range(2)]
    assert abs(per_micro_batch[0] - per_micro_batch[1]) > 5, per_micro_batch


@pytest.mark.slow      # 15-35 s on 2 cores: out of the -m 'not slow' set's 10 min
def test_accumulated_gradient_is_the_token_mean_of_the_whole_batch(packed):
    built, batch = packed
    params = built.state.params
    loss_fn = lambda p, b, r: built.objective.loss_fn(p, b, r, train=True, frozen={})
    run = jax.jit(functools.partial(step_lib.weighted_loss_and_grad, loss_fn), static_argnums=3)
    rng = jax.random.key(0)
    one = run(params, batch, rng, 1)
    two = run(params, batch, rng, 2)
    np.testing.assert_allclose(two[0], one[0], rtol=1e-6)                  # loss
    np.testing.assert_allclose(two[1]["nll"], one[1]["nll"], rtol=1e-6)
    for a, b in zip(jax.tree.leaves(two[2]), jax.tree.leaves(one[2])):    # gradients, to 1e-6
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)   # absolute (measured: 2.4e-7)
    # Averaging the micro-batches' means with equal weights is measurably wrong on this batch.
    equal = jax.tree.map(lambda *g: (g[0] + g[1]) / 2, *[
        jax.grad(lambda p, b: loss_fn(p, b, rng)[0])(params, jax.tree.map(lambda x: x[k::2], batch))
        for k in range(2)])
    gap = max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(equal),
                                                            jax.tree.leaves(one[2])))
    assert gap > 1e-4, gap


@pytest.mark.slow
def test_runner_accumulates_by_tokens(packed, tmp_path):
    _, batch = packed
    out = {}
    for accum in (1, 2):
        built = train.setup(packed_config(**{"optimizer.grad_accum": accum}))
        _, m = built.step_fn(built.state, sharding.put_batch(batch, built.mesh))
        out[accum] = jax.device_get(m)
    for key in ("loss", "nll", "grad_norm"):
        np.testing.assert_allclose(out[2][key], out[1][key], rtol=1e-6, err_msg=key)
    np.testing.assert_allclose(out[1]["perplexity"], np.exp(out[1]["nll"]), rtol=1e-6)
    objective = built.objective            # MFU's FLOPs: nanoGPT's per token, times the tokens
    assert objective.flops_per_batch(batch) == objective.flops_per_token() * batch["inputs"].size


def test_validation_pools_nll_by_tokens_and_derives_perplexity(packed):
    built, _ = packed
    cfg = packed_config(**{"eval.num_batches": 3, "eval.batch_size": 8})
    ev = evaluate.EvalRunner(built.objective, cfg, built.mesh, built.dataset, "")
    got = ev.val_metrics(built.state.params, {}, {}, 0)
    nll_sum = tokens = 0.0
    per_batch = []
    for i in range(3):       # by hand: the token-weighted NLL over the three batches
        batch = built.host_batch(built.dataset.val, i, 0, False)
        logits = built.objective.logits(built.state.params, batch, None, train=False)
        logp = jax.nn.log_softmax(logits)
        nll = -np.take_along_axis(np.asarray(logp), batch["targets"][..., None], -1)[..., 0]
        nll_sum += float((nll * batch["weights"]).sum())
        tokens += float(batch["weights"].sum())
        per_batch.append(float((nll * batch["weights"]).sum() / batch["weights"].sum()))
    assert got["val/nll"] == pytest.approx(nll_sum / tokens, rel=1e-5)
    assert got["val/perplexity"] == pytest.approx(np.exp(nll_sum / tokens), rel=1e-5)
    assert abs(np.mean(per_batch) - nll_sum / tokens) > 1e-5   # the batches' plain mean differs


# ---- prepare, aux state: a sampler inside the step ------------------------------------------

def sampler_config(tmp_path, **updates):
    return toys.config("toy_sampler", **{"data.kind": "numpy",
                                         "data.path": toys.write_arrays(tmp_path, "toy_sampler"),
                                         "optimizer.lr": 0.5, "optimizer.decay_steps": 12,
                                         "batch_size": 32, "train.steps": 12,
                                         "checkpoint.every": 4, **updates})


@pytest.fixture(scope="module")
def sampler_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("sampler")
    runs = {}
    for name, mesh in {"one_device": (1, 1), "eight_devices": (2, 4)}.items():
        cfg = sampler_config(base, **{"mesh.data": mesh[0], "mesh.fsdp": mesh[1]})
        runs[name] = train.run(cfg, str(base / name))
    cfg = sampler_config(base, **{"mesh.data": 2, "mesh.fsdp": 4})
    killed = train.run(cfg, str(base / "killed"), stop_after=6)     # saved at 4, dies after 6
    assert killed.stopped_early
    runs["resumed"] = train.run(cfg, str(base / "killed"))
    return runs


@pytest.mark.slow
def test_prepare_samples_from_current_params_and_learns(sampler_runs):
    run = sampler_runs["one_device"]
    rewards = [h["train/reward"] for h in run.history if "train/reward" in h]
    assert len(rewards) == 12, rewards          # by chance 1/8; learnt: towards 1
    assert np.mean(rewards[-3:]) > np.mean(rewards[:3]) + 0.2, rewards


@pytest.mark.slow
def test_prepare_on_eight_devices_equals_one_device(sampler_runs):
    one, eight = losses(sampler_runs["one_device"].history), losses(sampler_runs["eight_devices"].history)
    assert sorted(one) == sorted(eight) == list(range(1, 13))
    np.testing.assert_allclose([eight[s] for s in one], [one[s] for s in one], rtol=1e-6, atol=1e-7)
    logits = sampler_runs["eight_devices"].state.params["logits"]
    assert not logits.sharding.is_fully_replicated


@pytest.mark.slow
def test_kill_and_resume_with_prepare_and_aux_is_bit_identical(sampler_runs):
    full, resumed = sampler_runs["eight_devices"], sampler_runs["resumed"]
    after = losses(resumed.history)
    assert sorted(after) == list(range(5, 13))
    assert all(after[s] == losses(full.history)[s] for s in after)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(resumed.state.params),
                 jax.device_get(full.state.params))
    # the auxiliary state went through the checkpoint: restored, not re-initialised
    aux = jax.device_get(resumed.state.aux)
    assert int(aux["updates"]) == 12 and float(aux["baseline"]) > 0
    jax.tree.map(np.testing.assert_array_equal, aux, jax.device_get(full.state.aux))


def test_mfu_comes_from_the_objectives_flops_per_batch(tmp_path, monkeypatch):
    monkeypatch.setattr(metrics, "peak_flops_per_device", lambda kind=None: 1e12)
    result = train.run(sampler_config(tmp_path, **{"train.steps": 3}), str(tmp_path / "run"))
    for h in (h for h in result.history if "train/mfu" in h):
        assert h["train/mfu"] == pytest.approx(1e9 * h["train/steps_per_sec"] / 1e12)
    assert any("train/mfu" in h for h in result.history)
    assert "train/tokens_per_sec" not in result.history[-1]     # no tokens: MFU all the same


# ---- the update override ----------------------------------------------------------------------

def test_update_override_equals_a_hand_written_loop(tmp_path):
    cfg = toys.config("toy_epochs", **{"data.kind": "numpy", "optimizer.lr": 0.05,
                                       "optimizer.warmup_steps": 0,
                                       "data.path": toys.write_arrays(tmp_path, "toy_epochs")})
    built = train.setup(cfg)
    start = jax.device_get(built.state)
    batch = built.host_batch(built.dataset.train, 0)
    state, m = built.step_fn(built.state, sharding.put_batch(batch, built.mesh))

    objective, tx = built.objective, optim.make_optimizer(cfg.optimizer, start.params)[0]
    params, opt_state, rng = start.params, start.opt_state, jax.random.fold_in(start.rng, 0)
    ctx = StepContext(step=jnp.int32(0), aux={}, total_steps=4)
    steps = 0
    for rows in objective.minibatches(rng, batch["x"].shape[0]):      # 2 epochs x 2 minibatches
        mb = {k: v[np.asarray(rows)] for k, v in batch.items()}
        grads = jax.grad(lambda p: objective.loss_fn(p, mb, rng, train=True, frozen={},
                                                     ctx=ctx)[0])(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        steps += 1
    assert steps == 4
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                 jax.device_get(state.params), params)
    assert int(jax.device_get(state.opt_state[1][0].count)) == 4    # four Adam updates
    assert float(m["loss"]) >= 0


# ---- objectives size their data ----------------------------------------------------------------

def test_an_objective_asks_the_data_for_its_own_raw_length_and_fields():
    built = train.setup(toys.config("toy_span_drop"))       # model length 16, raw rows 25
    raw = built.dataset.train.get_batch(0)
    assert set(raw) == {"tokens"} and raw["tokens"].shape == (16, 25)
    batch = built.host_batch(built.dataset.train, 0)
    assert batch["inputs"].shape == batch["targets"].shape == (16, 16)
    np.testing.assert_array_equal(batch["inputs"][:, 1:], batch["targets"][:, :-1])
    state, m = built.step_fn(built.state, sharding.put_batch(batch, built.mesh))
    assert np.isfinite(float(m["loss"]))


# ---- built in one step ------------------------------------------------------------------------

def test_the_runner_builds_the_objective_on_the_data_s_spec_and_nothing_rebinds_it():
    built = train.setup(toys.config("toy_span_drop"))
    spec = built.objective.spec
    assert spec.tokenizer is built.dataset.tokenizer and dict(spec.info) == built.dataset.info
    assert not hasattr(built.objective, "bind_data")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.tokenizer = None
    with pytest.raises(TypeError):
        spec.info["train_tokens"] = 0                  # a read-only view of the data's info
