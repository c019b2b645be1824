"""The reproduction registry: ``--list`` shows every entry with its status, every CPU entry
passes (those under a minute here, the baby GPT as a slow test), a number off its target fails,
and entries that cannot run say why."""
import json
import os
import textwrap

import jax
import pytest

from conftest import SHARED_DATA
from pretrainx import main
from pretrainx.tools import reproduce

ENTRIES = reproduce.load_registry()
RUNNABLE_CPU = [e for e in ENTRIES if e.hardware == "cpu" and e.kind != "unbuilt"]
needs_shakespeare = pytest.mark.skipif(not os.path.isdir(SHARED_DATA),
                                       reason="../shared/data (Tiny Shakespeare) absent")


def _run(capsys, *argv):
    code = main.cli(["reproduce", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_registry_has_the_issue_entries_each_with_a_source_and_a_record_or_a_reason():
    names = {e.name for e in ENTRIES}
    assert {"shakespeare_char", "baby_gpt_cpu", "bigram_char", "trigram_char", "fourgram_char",
            "gpt2_124m_params", "bert_base_params", "t5_small_params", "ddpm_cifar10_unet_params",
            "dit_s2_params", "fmnist_flow_fid", "fmnist_ddpm_fid"} <= names
    for e in ENTRIES:
        assert e.source and e.what and e.metric
        if isinstance(e.recorded, reproduce.Recorded):
            assert e.recorded.date and e.recorded.device
        else:
            assert e.recorded.startswith("not yet run"), e.name
        if e.kind in ("train", "params"):   # the config and overrides still load
            reproduce.load_config(e)
    gpu = [e for e in ENTRIES if e.hardware != "cpu"]
    assert gpu and all(e.kind == "train" for e in gpu)
    assert reproduce.find(ENTRIES, "shakespeare_char").recorded == reproduce.Recorded(
        1.4669, "2026-11-30", "NVIDIA H200 (device tool)",
        note="bf16, best at step 2000; 83 s wall (one-hot embedding lookup)")


def test_list_shows_every_entry_with_its_status(tmp_path, capsys):
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"name": "bigram_char", "value": 2.4819, "passed": True,
                               "date": "2026-11-30", "device": "CPU"}) + "\n")
    code, out, _ = _run(capsys, "--list", "--log", str(log))
    assert code == 0
    rows = {line.split("|")[1].strip(): line for line in out.splitlines()[2:]}
    assert set(rows) == {e.name for e in ENTRIES}
    assert "1.4669, 2026-11-30, NVIDIA H200 (device tool)" in rows["shakespeare_char"]
    assert "not yet run at full length" in rows["fmnist_flow_fid"]
    assert "not yet runnable: model not built" in rows["bert_base_params"]
    assert "PASS 2.4819 (2026-11-30, CPU)" in rows["bigram_char"]
    assert "1.88 ± 0.05" in rows["baby_gpt_cpu"]


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
@pytest.mark.parametrize("entry", [e for e in RUNNABLE_CPU if e.cpu_minutes >= 1],
                         ids=lambda e: e.name)
def test_longer_cpu_entry_passes(entry, tmp_path, capsys):
    _check_entry_passes(entry, tmp_path, capsys)


@needs_shakespeare
def test_a_number_off_its_target_fails_and_is_logged(tmp_path, capsys):
    registry = tmp_path / "registry.py"
    registry.write_text(textwrap.dedent("""
        from pretrainx.tools.reproduce import Entry, Target
        ENTRIES = [Entry(name="bigram_claimed_too_low", what="a bigram claimed at 2.0",
                         kind="ngram", options={"text": "../shared/data/tinyshakespeare/input.txt",
                                                "n": 2, "k": 1.0, "val_fraction": 0.1},
                         metric="val/loss", target=Target(2.0, tolerance=0.01),
                         source="a wrong claim", hardware="cpu")]
    """))
    log = tmp_path / "log.jsonl"
    code, out, _ = _run(capsys, "bigram_claimed_too_low", "--registry", str(registry),
                        "--log", str(log))
    assert code == 1 and out.startswith("FAIL bigram_claimed_too_low: val/loss = 2.48189 "), out
    assert reproduce.last_results(str(log))["bigram_claimed_too_low"]["passed"] is False


def test_entries_that_cannot_run_here_say_why(tmp_path, capsys):
    log = tmp_path / "log.jsonl"
    code, out, _ = _run(capsys, "bert_base_params", "--log", str(log))
    assert code == 3 and "not yet runnable: model not built" in out
    if jax.default_backend() == "cpu":
        code, out, _ = _run(capsys, "shakespeare_char", "--log", str(log))
        assert code == 3 and "needs 1 GPU" in out and "--force" in out
    assert not log.exists()   # nothing measured, nothing logged
    code, _, err = _run(capsys, "no_such_entry")
    assert code == 2 and "no registry entry 'no_such_entry'" in err
