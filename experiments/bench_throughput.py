"""Training throughput of a config: tokens/s, step time and MFU, through the runner's own step.

  python experiments/bench_throughput.py --config configs/gpt/gpt2_124m.py --steps 30
  python experiments/bench_throughput.py --config configs/gpt/shakespeare_char.py:smoke --steps 20 \
      --set model.dtype=bfloat16

Batches come from the config's data (real text), prepared on the host before timing so the
number is the device's. Tokens/s come from a pipelined loop (one wait at the end, as in the
runner's loop); the median of per-step synced times is printed beside it. MFU =
(6N + 12·L·H·Q·T) FLOPs per token x tokens/s over the summed peak bf16 FLOP/s of the devices
(nanoGPT's estimate_mfu convention); "n/a" on a CPU.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import jax


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--steps", type=int, default=30, help="timed steps")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps after compilation")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. model.dtype=bfloat16 (repeatable)")
    p.add_argument("--json", help="also write the result to this file")
    p.add_argument("--measure-peak", action="store_true",
                   help="also time an 8192^3 bf16 matmul on this device and report MFU against it "
                        "(the measured ceiling) beside the datasheet MFU")
    p.add_argument("--steps-per-dispatch", type=int, default=1, metavar="K",
                   help="K > 1: also time K steps per dispatch (step.stacked_steps, a lax.scan) "
                        "and report its rate as step_ms_stacked / tokens_per_sec_stacked")
    args = p.parse_args()

    from pretrainx.config import load as config_lib

    from pretrainx.run import metrics

    from pretrainx.core import sharding

    from pretrainx.core import train, step as step_lib
    config = config_lib.override(config_lib.load(args.config), config_lib.parse_overrides(args.set))
    built = train.setup(config)
    n = args.warmup + args.steps
    batches = [sharding.put_batch(built.host_batch(built.dataset.train, i), built.mesh)
               for i in range(min(n, 8))]
    state = built.state
    t0 = time.perf_counter()
    state, m = built.step_fn(state, batches[0])
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t0
    times = []
    for i in range(1, n + 1):   # after the compiling step: warm-up steps, then timed ones
        t = time.perf_counter()
        state, m = built.step_fn(state, batches[i % len(batches)])
        jax.block_until_ready(m)
        if i > args.warmup:
            times.append(time.perf_counter() - t)
    step_s = statistics.median(times)
    # As the runner's loop does: dispatch every step and wait once at the end, so the host's
    # work overlaps the device's. Tokens/s and MFU use this time; the median above syncs each step.
    t = time.perf_counter()
    for i in range(args.steps):
        state, m = built.step_fn(state, batches[i % len(batches)])
    jax.block_until_ready(m)
    pipelined_s = (time.perf_counter() - t) / args.steps
    stacked_s = None
    k = args.steps_per_dispatch
    if k > 1:   # the same steps, k per dispatch: what is left of the per-step launch overhead
        stacked = jax.tree.map(lambda *xs: jax.numpy.stack(xs),
                               *[batches[i % len(batches)] for i in range(k)])
        multi = step_lib.stacked_steps(built.step_fn, k)
        state, m = multi(state, stacked)   # compiles
        jax.block_until_ready(m)
        dispatches = max(1, args.steps // k)
        t = time.perf_counter()
        for _ in range(dispatches):
            state, m = multi(state, stacked)
        jax.block_until_ready(m)
        stacked_s = (time.perf_counter() - t) / (dispatches * k)
    tokens = batches[0][built.objective.tokens_key].size if built.objective.tokens_key else None
    result = {
        "config": args.config, "overrides": args.set, "device": jax.devices()[0].device_kind,
        "num_devices": built.mesh.size, "compile_s": round(compile_s, 2),
        "step_ms_median": round(step_s * 1e3, 3), "steps_timed": len(times),
        "step_ms_pipelined": round(pipelined_s * 1e3, 3),
        "final_loss": float(m["loss"]),
    }
    if stacked_s is not None:
        result.update(steps_per_dispatch=k, step_ms_stacked=round(stacked_s * 1e3, 3))
    if tokens:
        tps = tokens / pipelined_s
        flops = built.objective.flops_per_batch(jax.device_get(batches[0]))   # the global batch
        fpt = flops / tokens if flops else None
        u = metrics.mfu(fpt, tps, built.mesh.size)
        result.update(tokens_per_step=tokens, tokens_per_sec=round(tps),
                      tokens_per_sec_synced=round(tokens / step_s), flops_per_token=fpt,
                      mfu=None if u is None else round(u, 4))
        if stacked_s is not None:
            result["tokens_per_sec_stacked"] = round(tokens / stacked_s)
        if args.measure_peak and fpt:
            peak = measured_matmul_flops()
            result.update(measured_peak_tflops=round(peak / 1e12, 1),
                          mfu_vs_measured_peak=round(fpt * tps / (peak * built.mesh.size), 4))
    stats = jax.devices()[0].memory_stats() or {}   # None on CPU
    if "peak_bytes_in_use" in stats:
        result["peak_memory_gib"] = round(stats["peak_bytes_in_use"] / 2**30, 2)
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
