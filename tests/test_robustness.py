"""Issue 9 in one process: a corrupt checkpoint moved aside, resume refusing another config before
rewriting anything, the workdir lock, no non-finite state saved, paths stored absolute, and the
smaller fixes (bits per char, peak FLOPs, the text-sample prompt, the eval key, non-UTF-8 text,
the beta schedule). The faults that need other processes are in test_faults.py; the tests that
train end to end (tiny GPT, a few steps) are marked slow."""
import json
import os
import signal
import time

import jax
import ml_collections
import numpy as np
import pytest

from conftest import data_config
from pretrainx import main

from pretrainx.core import checkpoint

from pretrainx.core import evaluate

from pretrainx.run import metrics

from pretrainx.core import train
from pretrainx.data import build as build_data
from pretrainx.data.base import Dataset
from pretrainx.data.basic_tokenizers import ByteTokenizer

import test_checkpoint_faults
import test_train

tiny_config = test_checkpoint_faults.tiny_config   # 1 layer, 5 steps


def corrupt(step_dir):
    for root, _, files in os.walk(step_dir / "state"):
        for f in files:
            with open(os.path.join(root, f), "wb") as fh:
                fh.write(b"garbage")
@pytest.mark.slow
def test_corrupt_latest_checkpoint_is_moved_aside_and_the_run_goes_on(tmp_path, caplog):
    cfg = tiny_config(**{"train.steps": 4, "checkpoint.every": 2, "checkpoint.keep": 3})
    train.run(cfg, str(tmp_path))
    corrupt(tmp_path / "checkpoints" / "4")
    for _ in range(2):                   # the rerun (and the one after) finish; none dies on step 4
        result = train.run(cfg, str(tmp_path))
    assert int(result.state.step) == 4
    assert "moved it to" in caplog.text and "corrupt-4" in caplog.text
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "4", "corrupt-4"]
    ckpt = checkpoint.Checkpointer(str(tmp_path), cfg.checkpoint)
    try:
        assert ckpt.restore(test_checkpoint_faults.restore_target(cfg))[2] == 4   # readable again
    finally:
        ckpt.close()
    # None readable: the config, not the files, is then the likelier culprit; nothing is moved.
    corrupt(tmp_path / "checkpoints" / "2")
    corrupt(tmp_path / "checkpoints" / "4")
    with pytest.raises(checkpoint.CheckpointError, match="step 4: .*step 2: "):
        train.run(cfg, str(tmp_path))
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "4", "corrupt-4"]
@pytest.mark.slow
def test_resume_with_another_config_stops_before_rewriting_anything(tmp_path):
    from pretrainx.run import rundir
    cfg = tiny_config(**{"train.steps": 2, "checkpoint.every": 2})
    train.run(cfg, str(tmp_path))
    before = {f: (tmp_path / f).read_bytes() for f in ("config.json", "metrics.jsonl",
                                                       "provenance.json")}
    changed = test_train.config_lib.override(cfg, {"model.embed_dim": 64, "seed": 7,
                                                   "batch_size": 8})
    with pytest.raises(rundir.ConfigMismatchError) as e:
        train.run(changed, str(tmp_path))
    for field in ("model.embed_dim", "seed", "batch_size"):
        assert field in str(e.value)
    assert {f: (tmp_path / f).read_bytes() for f in before} == before
    # Fewer steps than the run has done: refused (it exited 0 having done nothing), record kept.
    shorter = test_train.config_lib.override(cfg, {"train.steps": 1})
    with pytest.raises(rundir.ConfigError, match="at step 2, past train.steps=1"):
        train.run(shorter, str(tmp_path))
    assert {f: (tmp_path / f).read_bytes() for f in before} == before
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2"]
    # Safe changes (longer, another eval cadence) resume, and provenance records them.
    longer = test_train.config_lib.override(cfg, {"train.steps": 3, "eval.every": 3})
    assert int(train.run(longer, str(tmp_path)).state.step) == 3
    record = json.loads((tmp_path / "provenance.json").read_text())
    assert record["resumes"][-1]["config_changes"] == {"eval.every": [0, 3], "train.steps": [2, 3]}
@pytest.mark.slow
def test_a_second_writer_is_refused_while_the_first_holds_the_workdir(tmp_path):
    from pretrainx.run import lock as workdir_lock
    cfg = tiny_config()
    with workdir_lock.WorkdirLock(str(tmp_path)):
        with pytest.raises(workdir_lock.WorkdirError, match=rf"in use by another run \(pid {os.getpid()}"):
            train.run(cfg, str(tmp_path))
    assert not (tmp_path / "metrics.jsonl").exists()
    train.run(cfg, str(tmp_path))           # released on exit: the next run takes it


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
def test_a_state_with_non_finite_parameters_is_never_saved(tmp_path):
    # lr 1e39 overflows float32: the first update makes the weights inf/NaN while that step's
    # loss (measured before the update) is still finite.
    cfg = tiny_config(**{"optimizer.lr": 1e39, "optimizer.schedule": "constant",
                         "optimizer.warmup_steps": 0, "optimizer.clip_norm": 0.0,
                         "checkpoint.every": 1, "checkpoint.async_save": False})
    with pytest.raises(train.NonFiniteStateError, match="parameters are not finite after step 1"):
        train.run(cfg, str(tmp_path))
    saved = os.listdir(tmp_path / "checkpoints") if (tmp_path / "checkpoints").exists() else []
    assert not [s for s in saved if s.isdigit()], saved
@pytest.mark.slow
def test_relative_data_paths_are_stored_absolute(tmp_path, monkeypatch):
    run_dir = tmp_path / "here"
    run_dir.mkdir()
    (run_dir / "corpus.txt").write_text(open(os.__file__).read() * 3)
    monkeypatch.chdir(run_dir)
    cfg = tiny_config(**{"data.path": "corpus.txt", "data.max_bytes": 0, "train.steps": 1,
                         "checkpoint.every": 1})
    train.run(cfg, "run")
    saved = json.loads((run_dir / "run" / "config.json").read_text())
    assert saved["data"]["path"] == str(run_dir / "corpus.txt")
    monkeypatch.chdir(tmp_path)                 # `pretrainx eval` from another directory
    assert main.cli(["eval", "--workdir", str(run_dir / "run")]) == 0


def one_line_error(capsys, argv):
    code = main.cli(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, (code, err)
    return err


CONFIG = os.path.join(test_train.ROOT, "configs/gpt/shakespeare_char.py:smoke")
DIGITS = os.path.join(test_train.ROOT, "configs/diffusion/digits_smoke.py")


@pytest.mark.parametrize("flags,expected", [
    (["--config.train.steps=0"], "train.steps must be positive"),
    (["--config.train.steps=-5"], "train.steps must be positive"),
    (["--config.train.log_every=0"], "train.log_every must be positive"),
    (["--config.checkpoint.every=0"], "checkpoint.every must be positive"),
    (["--config.checkpoint.keep=0"], "checkpoint.keep must be positive"),
    (["--config.eval.batch_size=12", "--config.mesh.data=8"], "eval.batch_size 12 must be divisible"),
    (["--config.data.seq_len=128"], "longer than config.model.max_len"),
    (["--config.optimizer.lr=-0.1"], "optimizer.lr must be in"),
    (["--config.optimizer.ema_decay=1.0"], "optimizer.ema_decay must be in"),
    (["--config.optimizer.grad_accum=0"], "optimizer.grad_accum must be positive"),
    (["--config.eval.every=-1"], "eval.every must be >= 0"),
])
def test_impossible_values_are_one_line_errors_before_any_work(tmp_path, capsys, flags, expected):
    workdir = tmp_path / "w"
    err = one_line_error(capsys, ["train", "--config", CONFIG, "--workdir", str(workdir),
                                  "--config.data.path=stdlib", "--config.data.tokenizer=byte",
                                  "--config.model.vocab_size=256", *flags])
    assert expected in err
    assert not (workdir / "metrics.jsonl").exists() and not (workdir / "checkpoints").exists()


def test_linear_betas_that_reach_one_are_an_error_at_setup(tmp_path, capsys):
    err = one_line_error(capsys, ["train", "--config", DIGITS, "--workdir", str(tmp_path),
                                  "--config.diffusion.timesteps=10"])
    assert "timesteps=10" in err and "cosine" in err


def test_workdir_that_is_a_file_and_train_help(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = [(afile, "not a directory"), (afile / "sub", "cannot create workdir")]
    if os.path.isdir("/proc/1"):       # not writable even for root (tests may run as root)
        cases.append(("/proc/1", "is not writable"))
    for workdir, words in cases:
        err = one_line_error(capsys, ["train", "--config", CONFIG, "--workdir", str(workdir)])
        assert words in err
    assert main.cli(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--workdir" in out and "75" in out
@pytest.mark.slow
def test_a_misspelt_best_metric_stops_at_the_first_eval_and_the_fixed_rerun_resumes(tmp_path):
    from pretrainx.config import check as config_check
    cfg = tiny_config(**{"train.steps": 2, "eval.every": 1, "eval.num_batches": 1,
                         "checkpoint.every": 1, "checkpoint.best_metric": "val/los"})
    # before: the best keeper silently kept nothing for the whole run
    with pytest.raises(config_check.ConfigError, match=r"'val/los' is not among .*val/loss"):
        train.run(cfg, str(tmp_path))
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["1"]     # the step trained is kept
    fixed = test_train.config_lib.override(cfg, {"checkpoint.best_metric": "val/loss"})
    assert int(train.run(fixed, str(tmp_path)).state.step) == 2
    assert os.listdir(tmp_path / "checkpoints_best")                 # now a best one is kept


def _run_without_checkpoint(workdir, config):
    """A workdir holding only the run's config.json: what sample reads for its flags."""
    (workdir / "config.json").write_text(json.dumps(config.to_dict()))
    return str(workdir)


@pytest.mark.parametrize("flag,config", [("--max-new-tokens", CONFIG), ("--steps", DIGITS),
                                         ("--num-samples", DIGITS)])
def test_sample_refuses_a_count_below_one_before_restoring(tmp_path, capsys, flag, config):
    # no checkpoint: the flag is checked first (a negative count printed an empty sample)
    workdir = _run_without_checkpoint(tmp_path, test_train.config_lib.load(config))
    err = one_line_error(capsys, ["sample", "--workdir", workdir, flag, "-5"])
    assert f"{flag} must be >= 1, got -5" in err


def test_sample_takes_only_the_flags_of_the_run_s_objective(tmp_path, capsys):
    workdir = _run_without_checkpoint(tmp_path, test_train.config_lib.load(CONFIG))
    err = one_line_error(capsys, ["sample", "--workdir", workdir, "--guidance", "2"])
    assert "takes no '--guidance'" in err and "--prompt" in err and "--best-of" not in err
    assert main.cli(["sample", "--workdir", workdir, "--help"]) == 0
    listed = capsys.readouterr().out
    assert "--temperature" in listed and "--sampler" not in listed
    (tmp_path / "images").mkdir()
    images = _run_without_checkpoint(tmp_path / "images", test_train.config_lib.load(DIGITS))
    assert main.cli(["sample", "--workdir", images, "--help"]) == 0
    listed = capsys.readouterr().out
    assert "--sampler" in listed and "--guidance" in listed and "--temperature" not in listed


def test_a_garbled_record_is_one_line_for_eval_and_kept_aside_by_a_resume(tmp_path, capsys):
    from pretrainx.run import provenance
    (tmp_path / "config.json").write_bytes(b'{"trunc\xff')      # cut short, and not UTF-8
    err = one_line_error(capsys, ["eval", "--workdir", str(tmp_path)])   # was a JSON traceback
    assert "config.json is unreadable" in err
    (tmp_path / "provenance.json").write_text('{"git_commit": ')
    record = provenance.write(str(tmp_path), resumed_from_step=3)     # was a JSON traceback
    assert json.loads((tmp_path / "provenance.json").read_text()) == record
    assert (tmp_path / "provenance.json.unreadable").read_text() == '{"git_commit": '


def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    """Only errors raised on purpose are one-liners: a KeyError of a dict lookup is a bug."""
    def buggy_run(config, workdir):
        return {}["missing"]
    monkeypatch.setattr(train, "run", buggy_run)
    with pytest.raises(KeyError, match="missing"):
        main.cli(["train", "--config", CONFIG, "--workdir", str(tmp_path)])


def test_non_utf8_bytes_byte_tokenizer_keeps_them_char_warns_or_refuses(tmp_path, caplog):
    path = tmp_path / "latin1.txt"
    path.write_bytes(("caf\xe9 na\xefve " * 400).encode("latin-1"))   # é, ï: not UTF-8
    data = data_config(**{"kind": "text", "path": str(path), "tokenizer": "byte",
                                      "val_fraction": 0.1, "decode_errors": "replace"})
    build = lambda d: build_data(d, batch_size=2, eval_batch_size=2, seq_len=8, seed=0)
    ids = build(data).train.tokens
    assert 0xE9 in ids and 0xEF in ids and 0xFFFD not in ids    # the file's own bytes
    data.tokenizer = "char"
    dataset = build(data)
    assert "800 bytes" in caplog.text and "\ufffd" in dataset.tokenizer.chars
    data.decode_errors = "strict"
    with pytest.raises(ValueError, match="800 bytes .* are not UTF-8"):
        build(data)


def test_bits_per_char_uses_the_validation_split_s_own_ratio():
    from pretrainx.objectives.clm import CausalLM
    from pretrainx.objectives.base import DataSpec
    # an ASCII training part (1 byte per char) and a Greek validation part (2 bytes per char)
    info = {"chars": 1100, "val_chars": 100, "train_tokens": 1000, "val_tokens": 200}
    objective = CausalLM(tiny_config(), DataSpec(ByteTokenizer(), info))
    out = objective.finalize_metrics({"nll": np.float32(np.log(2.0))})
    assert float(out["bits_per_char"]) == pytest.approx(2.0)


def test_peak_flops_match_whole_names_per_jax_device():
    assert metrics.peak_flops_per_device("NVIDIA L4") == 121e12
    assert metrics.peak_flops_per_device("NVIDIA L40S") == 362e12
    assert metrics.peak_flops_per_device("NVIDIA L40") == 181e12
    assert metrics.peak_flops_per_device("NVIDIA A100-SXM4-40GB") == 312e12
    assert metrics.peak_flops_per_device("TPU v3") == 61.5e12      # a core, half a chip
    assert metrics.peak_flops_per_device("TPU v5") == 459e12       # v5p
    assert metrics.peak_flops_per_device("TPU v5 lite") == 197e12


@pytest.mark.slow
def test_text_samples_take_a_prompt_longer_than_the_context(tmp_path):
    from pretrainx.objectives.clm import CausalLM, TextSampleEvaluator
    from pretrainx.objectives.base import DataSpec, EvalContext
    cfg = tiny_config(**{"sample.prompt": "def long_function_name(argument_one, argument_two):",
                         "sample.max_new_tokens": 100})
    objective = CausalLM(cfg, DataSpec(ByteTokenizer()))
    params = objective.init(jax.random.PRNGKey(0))
    ctx = EvalContext(params=params, frozen={}, step=3, workdir=str(tmp_path), rng=None,
                      mesh=None, val_data=None, samples_dir=str(tmp_path / "samples"))
    assert list(TextSampleEvaluator(objective.policy)(ctx)) == []
    text = (tmp_path / "samples" / "step_000003.txt").read_text()
    assert text.startswith(cfg.sample.prompt[-16:])     # the prompt's last half-context, then more


class _KeyProbe:
    """An objective with no data and one evaluator that records the key it is given."""
    def __init__(self):
        self.keys = []

    def data_request(self, config):
        from pretrainx.objectives.base import DataRequest
        return DataRequest(seq_len=None)

    def evaluators(self):
        return [lambda ctx: self.keys.append(np.asarray(jax.random.key_data(ctx.rng))) or []]


def test_eval_keys_of_different_seeds_and_steps_never_collide():
    keys = {}
    for seed, step in ((0, 1), (1, 0), (0, 2), (2, 0)):
        probe = _KeyProbe()
        config = ml_collections.ConfigDict({"seed": seed, "eval": {"num_batches": 0},
                                            "train": {"steps": 10}})
        evaluate.EvalRunner(probe, config, None, Dataset(None, None), "").run({}, {}, step)
        keys[(seed, step)] = tuple(probe.keys[0].ravel().tolist())
    assert len(set(keys.values())) == 4, keys


def test_cache_files_have_one_writer_and_atomic_renames(tmp_path, monkeypatch):
    from pretrainx.evaluators import cache as cache_lib
    path = str(tmp_path / "stats.npz")
    save = lambda tmp, value: np.save(open(tmp, "wb"), value)
    load = lambda file: np.load(file)
    monkeypatch.setattr(jax, "process_index", lambda: 1)     # not the writer: never computes
    with pytest.raises(FileNotFoundError):
        cache_lib.computed_once(path, lambda: pytest.fail("process 1 computed"), save, load)
    monkeypatch.setattr(jax, "process_index", lambda: 0)
    assert cache_lib.computed_once(path, lambda: np.arange(3), save, load).tolist() == [0, 1, 2]
    assert os.listdir(tmp_path) == ["stats.npz"]             # no temporary left behind

    def failing(tmp):
        open(tmp, "w").write("half")
        raise OSError("disk full")
    with pytest.raises(OSError):
        cache_lib.atomic_write(path, failing)
    assert np.load(path).tolist() == [0, 1, 2] and os.listdir(tmp_path) == ["stats.npz"]


def test_config_check_rejects_wrong_types():
    from pretrainx.config import check as config_check
    cfg = tiny_config()
    for dotted, value in (("train.steps", "ten"), ("train.steps", 2.5), ("batch_size", True)):
        bad = ml_collections.ConfigDict(cfg.to_dict(), type_safe=False)
        parent, _, leaf = dotted.rpartition(".")
        (bad[parent] if parent else bad)[leaf] = value
        with pytest.raises(config_check.ConfigError, match=dotted):
            config_check.check_values(bad)


def test_sigterm_sets_the_stop_flag_and_interrupts_an_evaluation_at_once():
    from pretrainx.run import preemption
    before = signal.getsignal(signal.SIGTERM)
    with preemption.PreemptionWatch(5) as watch:
        assert not watch.stop_at(1)
        with pytest.raises(preemption.Preempted):
            with watch.interruptible():           # an eval in progress: the handler raises
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
                pytest.fail("the evaluation went on after SIGTERM")
        assert watch.stop_at(2)                   # and the loop then saves and stops
    assert signal.getsignal(signal.SIGTERM) == before


def test_an_evaluation_polls_the_agreed_flag_between_its_parts():
    """Several processes cannot be interrupted anywhere (they must stop at the same point): the
    evaluator asks ``should_stop`` before each plug-in and raises Preempted."""
    from pretrainx.run import preemption
    probe = _KeyProbe()
    config = ml_collections.ConfigDict({"seed": 0, "eval": {"num_batches": 0},
                                        "train": {"steps": 10}})
    ev = evaluate.EvalRunner(probe, config, None, Dataset(None, None), "")
    with pytest.raises(preemption.Preempted):
        ev.run({}, {}, 3, should_stop=lambda: True)
    assert probe.keys == []                       # the plug-in never ran
    ev.run({}, {}, 3, should_stop=lambda: False)
    assert len(probe.keys) == 1
