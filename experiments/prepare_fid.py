"""Train (once) and cache the FID feature classifier of an image config's data, then print the
protocol's real-data floor and the classifier's held-out accuracy.

  python experiments/prepare_fid.py --config configs/diffusion/fashion_mnist_ddpm.py \
      [--config.eval.fid_num_samples=5000 ...]

Training runs do this themselves at their first FID eval; run it first when several runs on the
same data start together (so that they do not all train the classifier at once), or to read the
floor before any model exists. The cache is `eval.fid_cache_dir`, else $PRETRAINX_FID_CACHE,
else ~/.cache/pretrainx/fid.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time


def main() -> None:
    from pretrainx import objectives
    from pretrainx.config import load as config_lib
    from pretrainx.evaluators import fid
    from pretrainx.data.images import load_image_arrays
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="--config.KEY=VALUE overrides the config, as in pretrainx train")
    p.add_argument("--config", required=True, help="an image config, e.g. configs/diffusion/X.py[:arg]")
    p.add_argument("--json", help="also write the result to this file")
    rest, pairs = config_lib.split_override_args(sys.argv[1:])
    args = p.parse_args(rest)
    config = config_lib.apply_overrides(config_lib.load(args.config), pairs)
    objective = objectives.get(config.objective)(config)
    if not hasattr(objective, "fid_protocol"):
        raise SystemExit(f"prepare_fid: objective {config.objective!r} has no FID protocol")
    protocol = objective.fid_protocol()
    started = time.perf_counter()
    scorer = fid.FidScorer(load_image_arrays(config.data), protocol,
                           config.eval.get("fid_cache_dir", ""))
    floor = scorer.real_floor()
    result = {"config": args.config, "protocol": protocol.__dict__, "cache_dir": scorer.cache_dir,
              "real_floor": floor, "seconds": round(time.perf_counter() - started, 1)}
    for path in glob.glob(os.path.join(scorer.cache_dir, "classifier_*.json")):
        with open(path) as f:
            result.setdefault("classifiers", []).append(json.load(f))
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
