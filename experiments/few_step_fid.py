"""FID of finished image runs at several samplers, step counts and generator seeds, with the
real-data floor, the sampling wall time, and a 1-step grid: the numbers of experiments/few_step.md.

  python experiments/few_step_fid.py workdirs/fewstep_flow workdirs/fewstep_shortcut \
      --seeds 0 1 2 --json workdirs/few_step_fid.jsonl

Per run: the latest checkpoint's evaluation weights (the EMA) restored as `pretrainx eval` does;
the run's own FID protocol (eval.fid_*: sample count, reference, extractor) and cache; samplers
from --samplers (default: the run's eval.fid_samplers), guidance from --guidance (default: the
run's sample.guidance). Generator seed s draws the noise (jax.random.key(s)); labels are balanced
0..K-1. The grid (10 samples of each class, seed 0, the first 1-step sampler) goes to
WORKDIR/samples/fewstep_<sampler>1.png.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import jax


def score_run(workdir: str, samplers, seeds, guidance, record=lambda row: None) -> dict:
    from pretrainx.evaluators import fid
    from pretrainx.data.images import load_image_arrays
    from pretrainx.core.inference import load_trained_run   # the weights `pretrainx eval` scores
    from pretrainx.objectives.image_common import parse_sampler

    objective, ctx, config = load_trained_run(workdir, "latest")
    protocol = objective.fid_protocol()
    scorer = fid.FidScorer(load_image_arrays(config.data), protocol,
                           config.eval.get("fid_cache_dir", ""))
    specs = [parse_sampler(s) for s in samplers] if samplers else objective.fid_samplers()
    guidance = float(config.sample.get("guidance", 1.0) if guidance is None else guidance)
    out = {"workdir": workdir, "objective": config.objective, "step": int(ctx.step),
           "guidance": guidance, "num_samples": protocol.num_samples,
           "num_reference": protocol.num_reference or len(scorer.arrays.train_images),
           "num_heldout": len(scorer.arrays.heldout_images), "floor": scorer.real_floor(),
           "fid": {}}
    for sampler, steps in specs:
        name = f"{sampler}:{steps}"
        for seed in seeds:
            started = time.perf_counter()
            images = objective.sample_images(ctx.params, jax.random.key(seed), protocol.num_samples,
                                        sampler=sampler, steps=steps, guidance=guidance)
            seconds = time.perf_counter() - started
            value = scorer.score(images)
            out["fid"].setdefault(name, []).append({"seed": seed, "fid": value,
                                                    "sample_s": seconds})
            print(f"{workdir} {name} guidance {guidance:g} seed {seed}: FID {value:.2f} "
                  f"(floor {out['floor']:.2f}; sampling {seconds:.1f} s)", flush=True)
            record({**{k: v for k, v in out.items() if k != "fid"}, "sampler": name,
                    "seed": seed, "fid": value, "sample_s": seconds})
    one_step = [s for s, n in specs if n == 1]
    if one_step:
        labels = [k for k in range(max(objective.num_classes, 1)) for _ in range(10)]
        images = objective.sample_images(ctx.params, jax.random.key(0), len(labels),
                                    sampler=one_step[0], steps=1, guidance=guidance,
                                    labels=labels if objective.num_classes else None)
        out["grid"] = fid.save_image_grid(images, os.path.join(
            workdir, "samples", f"fewstep_{one_step[0]}1_g{guidance:g}.png"), columns=10)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workdirs", nargs="+")
    p.add_argument("--samplers", nargs="*", help="e.g. euler:1 euler:32 (default: the run's)")
    p.add_argument("--seeds", nargs="*", type=int, default=[0], help="generator seeds")
    p.add_argument("--guidance", type=float, help="default: the run's sample.guidance")
    p.add_argument("--json", help="append one JSON line per FID (as it is measured) to this file")
    args = p.parse_args()

    def record(row):
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(row) + "\n")
    for workdir in args.workdirs:
        score_run(workdir, args.samplers, args.seeds, args.guidance, record)


if __name__ == "__main__":
    main()
