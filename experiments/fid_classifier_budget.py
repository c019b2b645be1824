"""How long the FID feature classifier takes to train, and how well it classifies held-out images
(experiments/first_hour.md): one network on one data set per call, in a fresh cache folder.

  python experiments/fid_classifier_budget.py digits28 [--network classifier_fast] [--steps 600]
  python experiments/fid_classifier_budget.py fashion --fashion-dir /work/shared/data/fashion-mnist

"digits28": scikit-learn's 8x8 digits upsampled to 28x28 (MNIST-like, 1,617 train / 180 held
out); "fashion": Fashion-MNIST (60,000 / 10,000). Prints one JSON line with the wall time of the
classifier's training (compile and held-out pass included), its held-out accuracy and the load.
"""
import argparse
import json
import os
import tempfile
import time

from pretrainx.config import images as image_presets
from pretrainx.data.images import load_image_arrays
from pretrainx.evaluators import fid_classifier


def arrays_of(name: str, fashion_dir: str):
    if name == "digits28":
        data = image_presets.digits_data()
        data.image_size = 28
    else:
        data = image_presets.idx_data(fashion_dir)
    return load_image_arrays(data)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", choices=("digits28", "fashion"))
    p.add_argument("--network", default="classifier_fast", choices=sorted(fid_classifier.BATCH_SIZES))
    p.add_argument("--steps", type=int, default=fid_classifier.TRAIN_STEPS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fashion-dir", default="/work/shared/data/fashion-mnist")
    args = p.parse_args()
    arrays = arrays_of(args.data, args.fashion_dir)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as cache:
        start = time.time()
        fid_classifier.load_or_train(arrays, cache, args.seed, args.steps, args.network)
        seconds = time.time() - start
        [report_file] = [f for f in os.listdir(cache) if f.endswith(".json")]
        with open(os.path.join(cache, report_file)) as f:
            report = json.load(f)
    print(json.dumps({"data": args.data, "network": args.network, "steps": args.steps,
                      "seed": args.seed, "seconds": round(seconds, 1),
                      "heldout_accuracy": report["heldout_accuracy"],
                      "heldout_images": len(arrays.heldout_labels),
                      "load_before": [round(x, 2) for x in load_before],
                      "load_after": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
