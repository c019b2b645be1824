"""Training FLOPs per step of configs, from XLA's cost analysis of the runner's own jitted step,
and the steps each config may take to spend the same FLOPs as the first (issue 12's "same training
budget": a method whose step costs more trains for fewer steps).

  python experiments/train_step_flops.py configs/diffusion/digits_few_step.py \
      configs/diffusion/digits_shortcut.py configs/diffusion/digits_meanflow.py \
      configs/diffusion/digits_few_step.py:ddpm

Counted on one CPU device; the count does not depend on the machine or on other jobs sharing it,
unlike wall time (which experiments/few_step.md reports beside it).
"""
from __future__ import annotations

import argparse
import json

import jax


def step_flops(config_path: str) -> tuple[float, int]:
    """(FLOPs of one train step, the config's train.steps)."""
    from pretrainx.config import load as config_lib
    from pretrainx.core import sharding, train
    config = config_lib.override(config_lib.load(config_path), {"mesh.data": 1})
    built = train.setup(config)
    batch = sharding.put_batch(train.host_batch(built.dataset.train, built.objective, 0,
                                                config.seed), built.mesh)
    cost = built.step_fn.lower(built.state, batch).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"]), int(config.train.steps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("configs", nargs="+", help="config paths; the first sets the budget")
    p.add_argument("--json", help="also write the table to this file")
    args = p.parse_args()
    rows = []
    for path in args.configs:
        flops, steps = step_flops(path)
        rows.append({"config": path, "flops_per_step": flops, "configured_steps": steps})
    budget = rows[0]["flops_per_step"] * rows[0]["configured_steps"]
    for r in rows:
        r["steps_for_equal_flops"] = int(budget // r["flops_per_step"])
        r["relative_step_cost"] = r["flops_per_step"] / rows[0]["flops_per_step"]
        print(f"{r['config']}: {r['flops_per_step'] / 1e9:.2f} GFLOP/step "
              f"({r['relative_step_cost']:.2f}x), {r['configured_steps']} steps configured, "
              f"{r['steps_for_equal_flops']} for the first config's {budget / 1e12:.2f} TFLOP")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    jax.config.update("jax_platforms", "cpu")
    main()
