"""Benchmarks of a config's train step, through the runner's own jitted step:

  pretrainx bench --config configs/gpt/gpt2_124m.py [--steps 30] [--steps-per-dispatch K]
                  [--measure-peak] [--json FILE] [--config.KEY=VALUE ...]
  pretrainx flops CONFIG [CONFIG ...] [--json FILE] [--config.KEY=VALUE ...]
  pretrainx profile ... (``tools/profile.py``, on the same ``prepare``)

``prepare`` is the one "load the config, override, set up, pre-make the batches" they share.
Batches come from the config's data and are put on the devices before timing, so the number is
the device's. ``bench`` reports tokens/s (text objectives) and examples/s (images, pairs) from a
pipelined loop (one wait at the end, as the runner's loop dispatches), the median of per-step
synced times beside it, MFU and peak device memory. MFU = the objective's training FLOPs per
token (for a decoder ``6N + 12·L·H·Q·T``, nanoGPT's convention) x tokens/s over the summed peak
bf16 FLOP/s of the devices; "null" on a CPU. ``flops`` counts a whole train step (forward,
backward, optimiser) by XLA's cost analysis on one device, and the steps each config may take to
spend the FLOPs of the first (a same-budget comparison of methods whose steps cost differently).
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import statistics
import time

import jax

from pretrainx.core import host_devices
from pretrainx.errors import UserError


@dataclasses.dataclass
class Prepared:
    """A config set up for timing: the runner's objects and batches already on the devices."""
    spec: str
    pairs: list            # the --config.KEY=VALUE overrides, as KEY=VALUE texts
    config: object
    setup: object          # core.train.Setup: objective, mesh, state, step_fn, ...
    batches: list          # device batches, cycled through by the timed steps


def prepare(spec: str, pairs: list[str] = (), *, num_batches: int = 8,
            extra: dict | None = None) -> Prepared:
    """Load ``spec`` (``FILE.py[:arg]``), apply the overrides (``pairs``, then ``extra``), set up
    the run as ``train`` does and put ``num_batches`` training batches on the devices."""
    from pretrainx.config import load as config_lib
    from pretrainx.core import sharding, train
    config = config_lib.apply_overrides(config_lib.load(spec), list(pairs))
    config = config_lib.override(config, extra or {})
    setup = train.setup(config)
    batches = [sharding.put_batch(setup.host_batch(setup.dataset.train, i), setup.mesh)
               for i in range(num_batches)]
    return Prepared(spec, list(pairs), config, setup, batches)


def run_steps(prep: Prepared, state, count: int, *, sync_each: bool = False):
    """(state, metrics, per-step seconds) after ``count`` steps; synced after each when asked
    (their times then are the device's per step), else dispatched back to back."""
    times, metrics = [], None
    queue = host_devices.StepQueue(prep.setup.mesh)     # as the train loop bounds its queue
    for i in range(count):
        t = time.perf_counter()
        state, metrics = prep.setup.step_fn(state, prep.batches[i % len(prep.batches)])
        if sync_each:
            jax.block_until_ready(metrics)
            times.append(time.perf_counter() - t)
        else:
            queue.dispatched(metrics)
    jax.block_until_ready(metrics)
    return state, metrics, times


def time_stacked(prep: Prepared, state, k: int, steps: int):
    """(state, seconds per step) with ``k`` steps per dispatch (``step.steps_per_dispatch``, a
    loop on the device): what is left once the per-step launch overhead is shared by k steps."""
    from pretrainx.core import step as step_lib
    stacked = jax.tree.map(lambda *xs: jax.numpy.stack(xs),
                           *[prep.batches[i % len(prep.batches)] for i in range(k)])
    multi = functools.partial(step_lib.steps_per_dispatch(prep.setup.step_fn, k), n=k)
    state, metrics = multi(state, stacked)   # compiles
    jax.block_until_ready(metrics)
    dispatches = max(1, steps // k)
    t = time.perf_counter()
    queue = host_devices.StepQueue(prep.setup.mesh)
    for _ in range(dispatches):
        state, metrics = multi(state, stacked)
        queue.dispatched(metrics)
    jax.block_until_ready(metrics)
    return state, (time.perf_counter() - t) / (dispatches * k)


def measured_matmul_flops(n: int = 8192, reps: int = 10) -> float:
    """FLOP/s of a bf16 n^3 matmul on random data, the best of ``reps`` after a warm-up."""
    import jax.numpy as jnp
    a, b = (jax.random.normal(k, (n, n), jnp.bfloat16) for k in jax.random.split(jax.random.key(0)))
    f = jax.jit(lambda a, b: a @ b)
    f(a, b).block_until_ready()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        f(a, b).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def throughput(prep: Prepared, steps: int = 30, warmup: int = 5, steps_per_dispatch: int = 1,
               measure_peak: bool = False) -> dict:
    """The bench's result (the keys experiments/h100_runbook.sh reads): compile time, step times
    synced and pipelined, tokens and examples per second, FLOPs, MFU, peak device memory."""
    t0 = time.perf_counter()
    state, _, _ = run_steps(prep, prep.setup.state, 1)
    compile_s = time.perf_counter() - t0
    prep.setup.state = None   # donated to the first step
    state, _, times = run_steps(prep, state, warmup + steps, sync_each=True)
    step_s = statistics.median(times[warmup:])
    t = time.perf_counter()
    state, metrics, _ = run_steps(prep, state, steps)
    pipelined_s = (time.perf_counter() - t) / steps
    result = {"config": prep.spec, "overrides": prep.pairs,
              "device": jax.devices()[0].device_kind, "num_devices": prep.setup.mesh.size,
              "compile_s": round(compile_s, 2), "step_ms_median": round(step_s * 1e3, 3),
              "steps_timed": steps, "step_ms_pipelined": round(pipelined_s * 1e3, 3),
              "final_loss": float(metrics["loss"])}
    stacked_s = None
    if steps_per_dispatch > 1:
        state, stacked_s = time_stacked(prep, state, steps_per_dispatch, steps)
        result.update(steps_per_dispatch=steps_per_dispatch,
                      step_ms_stacked=round(stacked_s * 1e3, 3))
    result.update(rates(prep, step_s, pipelined_s, stacked_s, measure_peak))
    stats = jax.devices()[0].memory_stats() or {}   # None on CPU
    if "peak_bytes_in_use" in stats:
        result["peak_memory_gib"] = round(stats["peak_bytes_in_use"] / 2**30, 2)
    return result


def rates(prep: Prepared, step_s: float, pipelined_s: float, stacked_s: float | None,
          measure_peak: bool) -> dict:
    """Examples, tokens and FLOPs per second of the global batch at the times measured."""
    from pretrainx.run import metrics
    objective, batch = prep.setup.objective, prep.batches[0]
    examples = int(next(iter(jax.tree.leaves(batch))).shape[0])
    out = {"examples_per_step": examples, "examples_per_sec": round(examples / pipelined_s, 1)}
    flops = objective.flops_per_batch(jax.device_get(batch))   # the global batch's
    if flops:
        out["flops_per_step"] = float(flops)
    tokens = batch[objective.tokens_key].size if objective.tokens_key else None
    if not tokens:
        return out
    tps, fpt = tokens / pipelined_s, (flops / tokens if flops else None)
    mfu = metrics.mfu(fpt, tps, prep.setup.mesh.size)
    out.update(tokens_per_step=tokens, tokens_per_sec=round(tps),
               tokens_per_sec_synced=round(tokens / step_s), flops_per_token=fpt,
               mfu=None if mfu is None else round(mfu, 4))
    if stacked_s is not None:
        out["tokens_per_sec_stacked"] = round(tokens / stacked_s)
    if measure_peak and fpt:
        peak = measured_matmul_flops()
        out.update(measured_peak_tflops=round(peak / 1e12, 1),
                   mfu_vs_measured_peak=round(fpt * tps / (peak * prep.setup.mesh.size), 4))
    return out


def xla_step_flops(prep: Prepared) -> float:
    """FLOPs of one train step of the global batch by XLA's cost analysis of the jitted step."""
    cost = prep.setup.step_fn.lower(prep.setup.state, prep.batches[0]).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"])


def flops_table(specs: list[str], pairs: list[str] = ()) -> list[dict]:
    """One row per config: FLOPs per step (counted on one device, so the count is the global
    batch's and does not depend on the machine), configured steps, and the steps that spend the
    first config's budget (its FLOPs per step x its steps)."""
    rows = []
    for spec in specs:
        prep = prepare(spec, pairs, num_batches=1, extra={"mesh.data": 1})
        rows.append({"config": spec, "flops_per_step": xla_step_flops(prep),
                     "configured_steps": int(prep.config.train.steps)})
    return equal_budgets(rows)


def equal_budgets(rows: list[dict]) -> list[dict]:
    """Each row with the steps that spend the first row's FLOPs and its step cost relative to the
    first's (a method whose step costs more trains for fewer steps on the same budget)."""
    budget = rows[0]["flops_per_step"] * rows[0]["configured_steps"]
    for r in rows:
        r["steps_for_equal_flops"] = int(budget // r["flops_per_step"])
        r["relative_step_cost"] = r["flops_per_step"] / rows[0]["flops_per_step"]
    return rows


def write_json(path: str | None, result) -> None:
    if path:     # before printing: a reader that closes stdout early (| head) must not lose it
        with open(path, "w") as f:
            json.dump(result, f, indent=2)


def bench_main(argv: list[str]) -> int:
    from pretrainx.config import load as config_lib
    rest, pairs = config_lib.split_override_args(argv)
    p = argparse.ArgumentParser(prog="pretrainx bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="FILE.py[:arg]")
    p.add_argument("--steps", type=int, default=30, help="timed steps")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps after compilation")
    p.add_argument("--steps-per-dispatch", type=int, default=1, metavar="K",
                   help="K > 1: also time K steps per dispatch (a loop on the device): step_ms_stacked, "
                        "tokens_per_sec_stacked")
    p.add_argument("--measure-peak", action="store_true", help="also time an 8192^3 bf16 matmul "
                   "and report MFU against it (the measured ceiling) beside the datasheet's")
    p.add_argument("--json", help="also write the result to this file")
    args = p.parse_args(rest)
    if args.steps < 1 or args.warmup < 0 or args.steps_per_dispatch < 1:
        raise UserError("--steps and --steps-per-dispatch must be >= 1, --warmup >= 0")
    prep = prepare(args.config, pairs)
    result = throughput(prep, args.steps, args.warmup, args.steps_per_dispatch, args.measure_peak)
    write_json(args.json, result)
    print(json.dumps(result, indent=2))
    return 0


def flops_main(argv: list[str]) -> int:
    from pretrainx.config import load as config_lib
    rest, pairs = config_lib.split_override_args(argv)
    p = argparse.ArgumentParser(prog="pretrainx flops", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("configs", nargs="+", help="FILE.py[:arg] ...; the first sets the budget")
    p.add_argument("--json", help="also write the table to this file")
    args = p.parse_args(rest)
    rows = flops_table(args.configs, pairs)
    write_json(args.json, rows)
    budget = rows[0]["flops_per_step"] * rows[0]["configured_steps"]
    for r in rows:
        print(f"{r['config']}: {r['flops_per_step'] / 1e9:.2f} GFLOP/step "
              f"({r['relative_step_cost']:.2f}x), {r['configured_steps']} steps configured, "
              f"{r['steps_for_equal_flops']} for the first config's {budget / 1e12:.2f} TFLOP")
    return 0
