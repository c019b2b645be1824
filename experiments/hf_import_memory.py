"""Peak host memory of ``pretrainx import-hf`` on a ~500 MB random Llama checkpoint (issue 21).

  PYTHONPATH=. python experiments/hf_import_memory.py [--layers 6] [--folder /tmp/hf_mem]

Writes a random fp32 Llama (hidden 1024, 16 / 4 heads, SwiGLU 2816, vocab 32000, untied head;
numpy + safetensors, no torch) into the folder, then imports it in a fresh process that reports
its resident set size right before the import (the baseline: python, jax, pretrainx loaded) and
its peak (ru_maxrss) after. One CPU device, so "device" arrays are host memory too.

Measured (2-core CPU shared with other jobs, load ~2, seed 0, 6 layers, 508 MiB checkpoint):
  before (whole train state at step 0, async Orbax save):  2091 MiB above a 200 MiB baseline = 4.12x
  now (weights only, files opened per tensor, no Orbax copy, no compression):
                                                             571 MiB above a 200 MiB baseline = 1.12x
Where the 4x went: Adam's two zero moments (2x), Orbax's defensive copy of every host array
before an async write (1x), and the safetensors memory map, whose pages stay resident while
the file is open (1x of file-backed RSS). Compression added its own buffers (~0.9x) and buys
nothing on float weights.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

CHILD = r"""
import os, resource, sys, json
import jax
from pretrainx.tools import hf_import
def rss_kib():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))
jax.numpy.zeros(1).block_until_ready()
base = rss_kib()
hf_import.import_hf(sys.argv[1], sys.argv[2])
print(json.dumps({"baseline_kib": base, "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def write_checkpoint(folder: str, layers: int) -> int:
    """A random Llama in ``folder``; returns the bytes of its safetensors file."""
    from safetensors.numpy import save_file
    from pretrainx.tools import hf_families
    import ml_collections
    m = ml_collections.ConfigDict(dict(
        vocab_size=32000, num_layers=layers, num_heads=16, num_kv_heads=4, embed_dim=1024,
        head_size=64, mlp_dim=2816, max_len=2048, norm_eps=1e-5, qkv_bias=False,
        rope_theta=10000.0, rope_scaling="none", tie_embeddings=False))
    rng = np.random.default_rng(0)
    shapes = {"wte/embedding": (32000, 1024), "ln_f/scale": (1024,), "lm_head/kernel": (1024, 32000)}
    for i in range(layers):
        E, H, K, D, M = 1024, 16, 4, 64, 2816
        shapes.update({f"h_{i}/ln_1/scale": (E,), f"h_{i}/ln_2/scale": (E,),
                       f"h_{i}/attn/query/kernel": (E, H, D), f"h_{i}/attn/key/kernel": (E, K, D),
                       f"h_{i}/attn/value/kernel": (E, K, D), f"h_{i}/attn/out/kernel": (H, D, E),
                       f"h_{i}/mlp/fc/kernel": (E, M), f"h_{i}/mlp/gate/kernel": (E, M),
                       f"h_{i}/mlp/proj/kernel": (M, E)})
    tensors = {}
    for rule in hf_families.llama_rules(m):
        tensors[rule.hf] = rule.join([rng.standard_normal(shapes[p], np.float32) * 0.02
                                      for p in rule.ours])
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.safetensors")
    save_file(tensors, path, metadata={"format": "pt"})
    config = {**hf_families.llama_config(m), "model_type": "llama"}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f)
    return os.path.getsize(path)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--folder", default="/tmp/hf_mem")
    args = p.parse_args()
    size = write_checkpoint(os.path.join(args.folder, "hf"), args.layers)
    workdir = os.path.join(args.folder, "run")
    subprocess.run(["rm", "-rf", workdir], check=True)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", CHILD, os.path.join(args.folder, "hf"), workdir],
                         env=env, check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    above = (r["peak_kib"] - r["baseline_kib"]) * 1024
    print(f"checkpoint {size / 2**20:.0f} MiB; baseline RSS {r['baseline_kib'] / 2**10:.0f} MiB; "
          f"peak {r['peak_kib'] / 2**10:.0f} MiB; peak above baseline {above / 2**20:.0f} MiB "
          f"= {above / size:.2f}x the checkpoint")


if __name__ == "__main__":
    main()
