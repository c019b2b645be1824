"""The reproduction registry: every entry names its external source or says it is a pin of our
own number, ``--list`` shows which and each entry's status, every CPU entry passes (those under a
minute here, the longer ones as slow tests) against a target that can fail, a number off its
target fails, a pin never reads as a reproduction, and entries that cannot run say why."""
import json
import os
import textwrap

import jax
import pytest

from conftest import SHARED_DATA
from pretrainx import main
from pretrainx.tools import reproduce

ENTRIES = reproduce.load_registry()
RUNNABLE_CPU = [e for e in ENTRIES if e.hardware == "cpu"]
LONG_MINUTES = 5              # entries this long run only with --run-long
needs_shakespeare = pytest.mark.skipif(not os.path.isdir(SHARED_DATA),
                                       reason="../shared/data (Tiny Shakespeare) absent")


def _run(capsys, *argv):
    code = main.cli(["reproduce", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_registry_has_the_issue_entries_each_with_a_source_or_a_pin():
    names = {e.name for e in ENTRIES}
    assert {"shakespeare_char", "baby_gpt_cpu", "bigram_char", "trigram_char", "fourgram_char",
            "gpt2_124m_params", "bert_base_params", "t5_small_params", "ddpm_cifar10_unet_params",
            "dit_s2_params", "fmnist_flow_fid", "fmnist_ddpm_fid", "bert_smoke_mlm",
            "reward_smoke", "few_step_protocol_floor", "few_step_meanflow_short"} <= names
    for e in ENTRIES:
        assert e.what and e.metric and e.kind in reproduce.KINDS
        assert bool(e.source) != bool(e.pin), e.name      # exactly one: where the number is from
        if isinstance(e.recorded, reproduce.Recorded):
            assert e.recorded.date and e.recorded.device
        else:
            assert e.recorded.startswith("not yet run"), e.name
        if e.kind in ("train", "params"):   # the config and overrides still load
            reproduce.load_config(e)
    # Our own numbers are pins, never sources: an entry whose number this repo measured first
    # (the n-gram counts, the FID protocols, the short CPU runs) must not claim a source.
    for name in ("bigram_char", "fmnist_flow_fid", "bert_smoke_mlm", "reward_smoke",
                 "few_step_protocol_floor", "few_step_meanflow_short"):
        assert reproduce.find(ENTRIES, name).pin, name
    gpu = [e for e in ENTRIES if e.hardware != "cpu"]
    assert gpu and all(e.kind == "train" for e in gpu)
    assert reproduce.find(ENTRIES, "shakespeare_char").recorded == reproduce.Recorded(
        1.4669, "2026-11-30", "NVIDIA H200 (device tool)",
        note="bf16, best at step 2000; 83 s wall (one-hot embedding lookup)")


def test_every_cpu_target_can_fail():
    """A band wide enough to pass anything checks nothing: each CPU entry's target refuses a
    number 20 % off its recorded one."""
    for e in RUNNABLE_CPU:
        assert e.target is not None and isinstance(e.recorded, reproduce.Recorded), e.name
        assert e.target.passes(e.recorded.value), e.name
        assert not e.target.passes(e.recorded.value * 1.2), e.name
        if e.target.kind == "within":
            assert not e.target.passes(e.recorded.value * 0.8), e.name


def test_a_registry_entry_without_source_or_pin_is_refused(tmp_path):
    registry = tmp_path / "registry.py"
    body = ("from pretrainx.tools.reproduce import Entry\n"
            "ENTRIES = [Entry(name='x', what='x', kind='params', metric='params', "
            "hardware='cpu', config='configs/gpt/gpt2_124m.py'{})]\n")
    for extra in ("", ", source='a paper', pin='ours too'"):
        registry.write_text(body.format(extra))
        with pytest.raises(ValueError, match="exactly one of source= .* or pin="):
            reproduce.load_registry(str(registry))


def test_list_shows_every_entry_with_its_status_and_which_numbers_are_pins(tmp_path, capsys):
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"name": "bigram_char", "value": 2.4819, "passed": True,
                               "date": "2026-11-30", "device": "CPU"}) + "\n")
    code, out, _ = _run(capsys, "--list", "--log", str(log))
    assert code == 0
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]]
            for line in out.splitlines()[2:]}
    assert set(rows) == {e.name for e in ENTRIES}
    for e in ENTRIES:
        assert rows[e.name][1] == ("source" if e.source else "pin (ours)"), e.name
        assert rows[e.name][-1] == (e.source or e.pin)
    assert "1.4669, 2026-11-30, NVIDIA H200 (device tool)" in rows["shakespeare_char"][5]
    assert "not yet run at full length" in rows["fmnist_flow_fid"][5]
    assert rows["bert_base_params"][3] == "110,000,000 ± 2%"
    assert rows["bigram_char"][6] == "PASS 2.4819 (2026-11-30, CPU)"
    assert rows["baby_gpt_cpu"][3] == "1.88 ± 0.05"


def _check_entry_passes(entry, tmp_path, capsys):
    if entry.options.get("text", "").startswith("../shared") or "shakespeare" in entry.config:
        if not os.path.isdir(SHARED_DATA):
            pytest.skip("../shared/data (Tiny Shakespeare) absent")
    log = tmp_path / "log.jsonl"
    code, out, err = _run(capsys, entry.name, "--log", str(log), "--workdir", str(tmp_path / "run"))
    verdict = out.strip().splitlines()[-1]   # a training entry prints its evals before
    assert code == 0 and verdict.startswith(f"PASS {entry.name}: "), out[-2000:] + err[-2000:]
    logged = reproduce.last_results(str(log))[entry.name]
    assert logged["passed"] is True and entry.target.passes(logged["value"])
    assert logged["date"] and logged["device"]


@pytest.mark.parametrize("entry", [e for e in RUNNABLE_CPU if e.cpu_minutes < 1],
                         ids=lambda e: e.name)
def test_cpu_entry_under_a_minute_passes(entry, tmp_path, capsys):
    _check_entry_passes(entry, tmp_path, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("entry", [e for e in RUNNABLE_CPU if 1 <= e.cpu_minutes < LONG_MINUTES],
                         ids=lambda e: e.name)
def test_longer_cpu_entry_passes(entry, tmp_path, capsys):
    _check_entry_passes(entry, tmp_path, capsys)


# The entries of 5 minutes and more (the baby GPT, the MeanFlow FID) would take a sixth of CI's
# hour between them: they run with --run-long (tests/conftest.py), and before each stop.
@pytest.mark.slow
@pytest.mark.long
@pytest.mark.parametrize("entry", [e for e in RUNNABLE_CPU if e.cpu_minutes >= LONG_MINUTES],
                         ids=lambda e: e.name)
def test_long_cpu_entry_passes(entry, tmp_path, capsys):
    _check_entry_passes(entry, tmp_path, capsys)


@needs_shakespeare
def test_a_number_off_its_target_fails_and_a_pin_never_says_reproduced(tmp_path, capsys):
    registry = tmp_path / "registry.py"
    registry.write_text(textwrap.dedent("""
        from pretrainx.tools.reproduce import Entry, Target
        BIGRAM = {"text": "../shared/data/tinyshakespeare/input.txt", "n": 2, "k": 1.0,
                  "val_fraction": 0.1}
        ENTRIES = [Entry(name="bigram_claimed_too_low", what="a bigram claimed at 2.0",
                         kind="ngram", options=BIGRAM, metric="val/loss",
                         target=Target(2.0, tolerance=0.01), source="a wrong claim",
                         hardware="cpu"),
                   Entry(name="bigram_pinned", what="the bigram, pinned", kind="ngram",
                         options=BIGRAM, metric="val/loss", target=Target(2.4819, 5e-4),
                         pin="our count", hardware="cpu"),
                   Entry(name="bigram_sourced", what="the bigram, sourced", kind="ngram",
                         options=BIGRAM, metric="val/loss", target=Target(2.4819, 5e-4),
                         source="a paper, table 1", hardware="cpu")]
    """))
    log = tmp_path / "log.jsonl"
    code, out, _ = _run(capsys, "bigram_claimed_too_low", "--registry", str(registry),
                        "--log", str(log))
    assert code == 1 and out.startswith("FAIL bigram_claimed_too_low: val/loss = 2.48189 "), out
    assert reproduce.last_results(str(log))["bigram_claimed_too_low"]["passed"] is False
    code, out, _ = _run(capsys, "bigram_pinned", "--registry", str(registry), "--log", str(log))
    assert code == 0 and out.startswith("PASS bigram_pinned")
    assert "a regression pin of our own number, not a reproduction" in out
    assert "reproduces" not in out
    code, out, _ = _run(capsys, "bigram_sourced", "--registry", str(registry), "--log", str(log))
    assert code == 0 and out.rstrip().endswith("; reproduces a paper, table 1"), out


def test_overrides_of_a_run_are_applied_and_logged(tmp_path, capsys):
    log = tmp_path / "log.jsonl"
    code, out, _ = _run(capsys, "gpt2_124m_params", "--log", str(log),
                        "--config.model.vocab_size=50304")
    assert code == 1 and "params = 124,475,904" in out     # 47 rows more: not GPT-2's count
    assert reproduce.last_results(str(log))["gpt2_124m_params"]["overrides"] == [
        "model.vocab_size=50304"]


def test_entries_that_cannot_run_here_say_why(tmp_path, capsys):
    log = tmp_path / "log.jsonl"
    if jax.default_backend() == "cpu":
        code, out, _ = _run(capsys, "shakespeare_char", "--log", str(log))
        assert code == 3 and "needs 1 GPU" in out and "--force" in out
    assert not log.exists()   # nothing measured, nothing logged
    code, _, err = _run(capsys, "no_such_entry")
    assert code == 2 and "no registry entry 'no_such_entry'" in err
