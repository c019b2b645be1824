"""``pretrainx profile``: where a train step's time goes, traced with jax.profiler and summed by
kernel.

  pretrainx profile --config configs/gpt/gpt2_124m.py --steps 5
  pretrainx profile --config configs/gpt/shakespeare_char.py --config.model.dtype=bfloat16 \
      --steps 20 --json /tmp/sc_profile.json

The steps run on ``tools.bench.prepare``'s setup and batches, as the bench times them.
The trace (TensorBoard / Perfetto files) stays in --trace-dir for a closer look. The summary reads
the Perfetto JSON that jax.profiler writes: on a GPU every kernel is an event on a "/device:GPU:N"
stream; on a CPU the XLA ops run on the client's threads (good enough to test the command, not to
tune). Printed: device-busy time per step against wall time per step (the gap is launch and host
overhead, which several steps per dispatch can hide), time by kind (matmul, attention, random
bits, fusions, copies, collectives), and the top kernels.
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import tempfile
import time

import jax

from pretrainx.errors import UserError

# Kernel kinds by name, first match wins. XLA names fusions after their root op; cuBLAS/CUTLASS
# matmuls carry gemm/xmma/cutlass in the name, cuDNN's fused attention "cudnn" or "flash".
KINDS = (
    ("attention (cuDNN)", re.compile(r"cudnn|flash|fmha|sdpa", re.I)),
    ("matmul", re.compile(r"gemm|xmma|cutlass|matmul|dot|wgmma|cublas", re.I)),
    ("random bits", re.compile(r"threefry|rng|random|philox", re.I)),
    ("collective", re.compile(r"all-reduce|all_reduce|allreduce|all-gather|reduce-scatter|nccl", re.I)),
    ("copy / transpose", re.compile(r"copy|transpose|memcpy|memset", re.I)),
    ("reduction fusion", re.compile(r"reduce", re.I)),
    ("elementwise fusion", re.compile(r"fusion|loop|convert|multiply|add|select", re.I)),
)


def kind_of(name: str) -> str:
    for kind, pattern in KINDS:
        if pattern.search(name):
            return kind
    return "other"


def device_events(trace: dict) -> tuple[list[dict], str]:
    """The kernel events of the trace: GPU/TPU stream events, else the CPU client's XLA ops."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    procs = {e["pid"]: e["args"]["name"] for e in events
             if e.get("ph") == "M" and e.get("name") == "process_name"}
    threads = {(e["pid"], e.get("tid")): e["args"]["name"] for e in events
               if e.get("ph") == "M" and e.get("name") == "thread_name"}
    accel = {pid for pid, name in procs.items() if re.search(r"/device:(GPU|TPU)", name)}
    complete = [e for e in events if e.get("ph") == "X" and "dur" in e]
    if accel:
        # A GPU process has one line per stream plus summary lines ("XLA Modules", "XLA Ops",
        # "Steps"): keep the stream lines, whose events are the kernels themselves.
        keep = [e for e in complete if e["pid"] in accel
                and re.search(r"stream", threads.get((e["pid"], e.get("tid")), ""), re.I)]
        if keep:
            return keep, "accelerator streams"
        return [e for e in complete if e["pid"] in accel], "accelerator (all lines)"
    xla_threads = {k for k, name in threads.items() if re.search(r"XLAEigen|XLACpu|Eigen", name)}
    return [e for e in complete if (e["pid"], e.get("tid")) in xla_threads], "CPU XLA threads"


def busy_time(events: list[dict]) -> float:
    """Microseconds in which at least one kernel runs (overlapping streams counted once)."""
    spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in events)
    total, end = 0.0, float("-inf")
    for start, stop in spans:
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def summarise(trace: dict, steps: int, wall_s: float, top: int = 25) -> dict:
    events, source = device_events(trace)
    by_name = collections.defaultdict(lambda: [0, 0.0])
    by_kind = collections.defaultdict(float)
    for e in events:
        by_name[e["name"]][0] += 1
        by_name[e["name"]][1] += e["dur"]
        by_kind[kind_of(e["name"])] += e["dur"]
    kernel_us = sum(by_kind.values())
    busy_us = busy_time(events)
    ranked = sorted(by_name.items(), key=lambda kv: -kv[1][1])
    pct = lambda us: round(100 * us / kernel_us, 1) if kernel_us else 0.0
    return {
        "source": source, "steps": steps, "kernels_per_step": round(len(events) / steps, 1),
        "wall_ms_per_step": round(wall_s * 1e3 / steps, 3),
        "device_busy_ms_per_step": round(busy_us / 1e3 / steps, 3),
        "kernel_ms_per_step": round(kernel_us / 1e3 / steps, 3),
        "by_kind": {k: {"ms_per_step": round(v / 1e3 / steps, 3), "pct": pct(v)}
                    for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])},
        "top_kernels": [{"name": n[:120], "kind": kind_of(n), "calls_per_step": round(c / steps, 2),
                         "ms_per_step": round(us / 1e3 / steps, 3), "pct": pct(us)}
                        for n, (c, us) in ranked[:top]],
    }


def print_summary(s: dict) -> None:
    print(f"{s['steps']} steps ({s['source']}): wall {s['wall_ms_per_step']} ms/step, device busy "
          f"{s['device_busy_ms_per_step']} ms/step, {s['kernels_per_step']} kernels/step")
    print("by kind:")
    for kind, v in s["by_kind"].items():
        print(f"  {kind:22s} {v['ms_per_step']:9.3f} ms/step  {v['pct']:5.1f} %")
    print("top kernels:")
    for k in s["top_kernels"]:
        print(f"  {k['ms_per_step']:9.3f} ms/step {k['pct']:5.1f} %  x{k['calls_per_step']:<6} "
              f"[{k['kind']}] {k['name']}")


def trace_lines(trace: dict) -> list[str]:
    """'process / thread: N events' for every line of the trace, to check what was summarised."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    procs = {e["pid"]: e["args"]["name"] for e in events
             if e.get("ph") == "M" and e.get("name") == "process_name"}
    threads = {(e["pid"], e.get("tid")): e["args"]["name"] for e in events
               if e.get("ph") == "M" and e.get("name") == "thread_name"}
    counts = collections.Counter((e["pid"], e.get("tid")) for e in events if e.get("ph") == "X")
    return [f"{procs.get(pid, pid)} / {threads.get((pid, tid), tid)}: {n} events"
            for (pid, tid), n in sorted(counts.items(), key=lambda kv: -kv[1])]


def load_trace(trace_dir: str) -> dict:
    found = sorted(glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"), recursive=True),
                   key=os.path.getmtime)
    if not found:
        raise FileNotFoundError(f"jax.profiler wrote no perfetto_trace.json.gz under {trace_dir}")
    with gzip.open(found[-1]) as f:
        return json.load(f)


def trace_steps(prep, steps: int, warmup: int, trace_dir: str) -> float:
    """Compile and warm up untraced, then trace ``steps`` pipelined steps; their wall seconds."""
    from pretrainx.tools import bench
    state, _, _ = bench.run_steps(prep, prep.setup.state, warmup + 1)   # the first call compiles
    prep.setup.state = None   # donated
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
        t = time.perf_counter()
        bench.run_steps(prep, state, steps)   # pipelined, as the runner's loop dispatches
        return time.perf_counter() - t


def main(argv: list[str]) -> int:
    from pretrainx.config import load as config_lib
    from pretrainx.tools import bench
    rest, pairs = config_lib.split_override_args(argv)
    p = argparse.ArgumentParser(prog="pretrainx profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="FILE.py[:arg]")
    p.add_argument("--steps", type=int, default=5, help="traced steps")
    p.add_argument("--warmup", type=int, default=3, help="untraced steps after compilation")
    p.add_argument("--trace-dir", help="where the trace goes (default: a new temporary folder)")
    p.add_argument("--top", type=int, default=25, help="kernels listed")
    p.add_argument("--json", help="also write the summary to this file")
    args = p.parse_args(rest)
    if args.steps < 1 or args.warmup < 0:
        raise UserError("--steps must be >= 1 and --warmup >= 0")
    prep = bench.prepare(args.config, pairs)
    trace_dir = args.trace_dir or tempfile.mkdtemp(prefix="pretrainx_profile_")
    wall_s = trace_steps(prep, args.steps, args.warmup, trace_dir)
    trace = load_trace(trace_dir)
    summary = summarise(trace, args.steps, wall_s, args.top)
    summary["trace_lines"] = trace_lines(trace)
    summary.update(config=args.config, overrides=pairs, device=jax.devices()[0].device_kind,
                   trace_dir=trace_dir)
    bench.write_json(args.json, summary)
    print_summary(summary)
    return 0
