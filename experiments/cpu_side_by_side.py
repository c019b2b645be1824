"""nanoGPT's CPU "baby GPT" against ``configs/gpt/shakespeare_char.py:cpu``, side by side on the
same data split, as a new user would run them; prints both walls, val losses and the ratio.

  python experiments/cpu_side_by_side.py --nanogpt /path/to/nanoGPT [--runs 2]
  python experiments/cpu_side_by_side.py --nanogpt ... --only pretrainx \\
      --env XLA_FLAGS=--xla_force_host_platform_device_count=2 --arg=--config.mesh.data=2

nanoGPT's code is read from the checkout given (https://github.com/karpathy/nanoGPT; nothing of it
is in this repository) and run in a temporary copy, so the checkout is not written to. Both read
Tiny Shakespeare (``--data``, by default ../shared/data beside this checkout), split as nanoGPT's
``data/shakespeare_char/prepare.py`` splits it: the first 90 % of the characters train, the rest
validate, characters numbered in sorted order. The baby GPT is nanoGPT README's command (4 layers,
4 heads, 128 wide, block 64, batch 12, 2000 iterations, dropout 0, eval 20 batches); the wall is
each process's, start-up and compilation included, as a user waits for it.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SHAKESPEARE = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "tinyshakespeare",
                                            "input.txt"))
BABY_GPT = ["--device=cpu", "--compile=False", "--eval_iters=20", "--log_interval=1",
            "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128",
            "--dropout=0.0"]              # and --max_iters=--lr_decay_iters=2000 (``--iters``)


def prepare_nanogpt(nanogpt: str, data: str, scratch: str) -> str:
    """A copy of nanoGPT's code with data/shakespeare_char/{train,val}.bin and meta.pkl written as
    its prepare.py writes them (without its download)."""
    import pickle
    copy = os.path.join(scratch, "nanoGPT")
    shutil.copytree(nanogpt, copy, ignore=shutil.ignore_patterns(".git", "out*", "*.bin"))
    folder = os.path.join(copy, "data", "shakespeare_char")
    text = open(data, encoding="utf-8").read()
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    cut = int(len(text) * 0.9)
    for name, part in (("train", text[:cut]), ("val", text[cut:])):
        np.array([stoi[c] for c in part], dtype=np.uint16).tofile(os.path.join(folder, f"{name}.bin"))
    with open(os.path.join(folder, "meta.pkl"), "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}, f)
    return copy


def timed(cmd: list[str], cwd: str, env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"cpu_side_by_side: error: {' '.join(cmd[:4])} ... exited {done.returncode}:\n"
                 f"{done.stderr[-2000:]}")
    return wall, done.stdout + done.stderr


def run_nanogpt(copy: str, scratch: str, iters: int) -> tuple[float, float]:
    out = os.path.join(scratch, "nanogpt_out")
    wall, log = timed([sys.executable, "train.py", "config/train_shakespeare_char.py", *BABY_GPT,
                       f"--max_iters={iters}", f"--lr_decay_iters={iters}",
                       f"--eval_interval={min(iters, 250)}", f"--out_dir={out}"], copy, dict(os.environ))
    losses = re.findall(r"step (\d+): train loss [\d.]+, val loss ([\d.]+)", log)
    return wall, float(losses[-1][1])


def run_pretrainx(data: str, scratch: str, iters: int, env_pairs: list[str],
                  args: list[str]) -> tuple[float, float]:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(pair.split("=", 1) for pair in env_pairs)
    workdir = tempfile.mkdtemp(dir=scratch, prefix="pretrainx_")
    wall, log = timed([sys.executable, "-m", "pretrainx.main", "train", "--config",
                       os.path.join(ROOT, "configs/gpt/shakespeare_char.py:cpu"), "--workdir", workdir,
                       f"--config.data.path={data}", "--config.train.progress=False",
                       f"--config.train.steps={iters}", f"--config.optimizer.decay_steps={iters}",
                       f"--config.eval.every={min(iters, 250)}", *args], ROOT, env)
    losses = re.findall(r"step (\d+): .*?val/loss=([\d.]+)", log)
    return wall, float(losses[-1][1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nanogpt", help="a checkout of nanoGPT's code (needed unless --only pretrainx)")
    p.add_argument("--data", default=SHAKESPEARE, help="Tiny Shakespeare's input.txt")
    p.add_argument("--iters", type=int, default=2000, help="steps of each (the README's 2000)")
    p.add_argument("--runs", type=int, default=1, help="runs of each (alternating)")
    p.add_argument("--only", choices=("both", "nanogpt", "pretrainx"), default="both")
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE for the pretrainx run")
    p.add_argument("--arg", action="append", default=[], help="an extra pretrainx train argument")
    a = p.parse_args(argv)
    if a.only != "pretrainx" and not (a.nanogpt and os.path.isfile(os.path.join(a.nanogpt, "train.py"))):
        p.error(f"--nanogpt must be a checkout of nanoGPT (with train.py); got {a.nanogpt!r}")
    if not os.path.isfile(a.data):
        p.error(f"no Tiny Shakespeare at {a.data} (give --data)")
    with tempfile.TemporaryDirectory(prefix="side_by_side_") as scratch:
        copy = prepare_nanogpt(a.nanogpt, a.data, scratch) if a.only != "pretrainx" else None
        for run in range(a.runs):
            load = " ".join(open("/proc/loadavg").read().split()[:3]) if os.path.exists("/proc/loadavg") else "?"
            print(f"run {run + 1}: load average before {load}", flush=True)
            rows = {}
            if a.only != "pretrainx":
                rows["nanoGPT"] = run_nanogpt(copy, scratch, a.iters)
            if a.only != "nanogpt":
                rows["pretrainx"] = run_pretrainx(a.data, scratch, a.iters, a.env, a.arg)
            for name, (wall, val) in rows.items():
                print(f"  {name:10s} wall {wall:7.1f} s   val loss {val:.4f}", flush=True)
            if len(rows) == 2:
                (nw, nv), (pw, pv) = rows["nanoGPT"], rows["pretrainx"]
                print(f"  ratio pretrainx / nanoGPT wall: {pw / nw:.2f}x   val difference "
                      f"{pv - nv:+.4f}", flush=True)


if __name__ == "__main__":
    main()
