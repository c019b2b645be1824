"""``pretrainx bench``, ``flops`` and ``profile`` on tiny CPU configs: they run through the CLI,
report positive rates, and their FLOPs are the objective's own count (bench) or XLA's count of
the whole step, near the analytic estimate (flops)."""
import json

import jax
import numpy as np
import pytest

from pretrainx import main
from pretrainx.config import load as config_lib
from pretrainx.core import train
from pretrainx.models import gpt
from pretrainx.tools import bench, profile

from test_cli import CONFIG, TINY

# The tiny byte-level GPT of test_cli (stdlib text, no data file), without the train-only flags.
GPT = [a for a in TINY if not a.startswith("--config.train.")]


def _cli_json(tmp_path, capsys, *argv):
    out = tmp_path / "out.json"
    assert main.cli([*argv, "--json", str(out)]) == 0
    capsys.readouterr()
    return json.loads(out.read_text())


def test_bench_reports_rates_and_the_objectives_own_flops(tmp_path, capsys):
    result = _cli_json(tmp_path, capsys, "bench", "--config", CONFIG, *GPT, "--steps", "3",
                       "--warmup", "1", "--steps-per-dispatch", "2")
    assert result["tokens_per_sec"] > 0 and result["tokens_per_sec_stacked"] > 0
    assert result["examples_per_sec"] > 0 and result["step_ms_stacked"] > 0
    assert result["tokens_per_step"] == 16 * 32 and result["examples_per_step"] == 16
    assert result["mfu"] is None                        # no datasheet peak for a CPU
    assert np.isfinite(result["final_loss"])
    # The FLOPs are the objective's count of the same global batch, and that count is nanoGPT's
    # 6N + 12·L·H·Q·T per token (N without the embeddings).
    config = config_lib.apply_overrides(config_lib.load(CONFIG), [a[9:] for a in GPT])
    setup = train.setup(config)
    batch = setup.host_batch(setup.dataset.train, 0)
    assert result["flops_per_step"] == setup.objective.flops_per_batch(batch)
    n = gpt.param_count(setup.state.params, non_embedding=True)
    per_token = 6 * n + 12 * 2 * 4 * 8 * 32      # L=2, H=4, Q=32/4, T=32
    assert result["flops_per_token"] == per_token
    assert result["flops_per_step"] == per_token * 16 * 32


@pytest.mark.slow
def test_bench_of_an_image_objective_reports_images_per_second(tmp_path, capsys):
    result = _cli_json(tmp_path, capsys, "bench", "--config",
                       "configs/diffusion/digits_smoke.py:flow,smoke", "--steps", "2",
                       "--warmup", "0", "--config.batch_size=16")
    assert result["examples_per_step"] == 16 and result["examples_per_sec"] > 0
    assert "tokens_per_sec" not in result and result["step_ms_pipelined"] > 0


def test_flops_counts_a_step_near_the_analytic_estimate(tmp_path, capsys):
    rows = _cli_json(tmp_path, capsys, "flops", CONFIG, *GPT)
    assert len(rows) == 1 and rows[0]["steps_for_equal_flops"] == rows[0]["configured_steps"]
    prep = bench.prepare(CONFIG, [a[9:] for a in GPT], num_batches=1)
    analytic = prep.setup.objective.flops_per_batch(jax.device_get(prep.batches[0]))
    # XLA counts every op of forward, backward and optimiser; the estimate only the matmuls and
    # attention: close, and not below it.
    assert 0.95 < rows[0]["flops_per_step"] / analytic < 1.6


def test_equal_budgets_give_a_costlier_step_fewer_steps():
    rows = bench.equal_budgets([{"config": "a", "flops_per_step": 4e9, "configured_steps": 3000},
                                {"config": "b", "flops_per_step": 5e9, "configured_steps": 3000}])
    assert [r["steps_for_equal_flops"] for r in rows] == [3000, 2400]
    assert [r["relative_step_cost"] for r in rows] == [1.0, 1.25]


def test_profile_writes_a_summary_of_the_traced_steps(tmp_path, capsys):
    result = _cli_json(tmp_path, capsys, "profile", "--config", CONFIG, *GPT, "--steps", "2",
                       "--warmup", "1", "--trace-dir", str(tmp_path / "trace"), "--top", "3")
    assert result["steps"] == 2 and result["wall_ms_per_step"] > 0
    assert result["kernels_per_step"] > 0 and len(result["top_kernels"]) == 3
    assert abs(sum(v["pct"] for v in result["by_kind"].values()) - 100) < 1


def test_busy_time_counts_overlapping_kernels_once():
    events = [{"ts": 0, "dur": 10}, {"ts": 5, "dur": 10}, {"ts": 30, "dur": 5},
              {"ts": 31, "dur": 2}]
    assert profile.busy_time(events) == 15 + 5
    assert profile.kind_of("fusion.12") == "elementwise fusion"
    assert profile.kind_of("sm90_xmma_gemm_bf16") == "matmul"


def test_the_measured_peak_is_a_positive_rate():
    assert bench.measured_matmul_flops(n=64, reps=2) > 0
