"""Run every table of experiments/robustness.md through ``pretrainx`` and print the rows (the
command, the exit code, what the user reads) and then the counts: tracebacks, silent or wrong
results, clear errors (a one-line error, or exit 0 with a warning saying what was tolerated),
survived faults. The bar is 0 tracebacks and 0 silent.

  python experiments/robustness_probe.py [--only SUBSTRING ...] [--table NAME ...] > /tmp/probe.md

Tables: ``CASES`` (issue 9's bad inputs), ``CASES_INPUTS`` (issue 24 part A: readers, objective
ranges, tools; present once that branch is merged), ``CASES_CHAINS`` (issue 24 part B: chains,
sweeps; robustness_cases.py) and ``FAULTS`` (signals, kills, deleted files: each a function that
injects the fault for real and checks what survived; robustness_faults.py).

Each case runs in a fresh temporary workdir on the tiny byte-level GPT of tests/test_cli.py (the
standard library's source as text), so it needs no data file and finishes in seconds.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
CONFIG = "configs/gpt/shakespeare_char.py:smoke"
TINY = ["--config.data.path=stdlib", "--config.data.max_bytes=100000",
        "--config.data.tokenizer=byte", "--config.model.vocab_size=256",
        "--config.model.num_layers=1", "--config.model.embed_dim=32", "--config.model.max_len=32",
        "--config.data.seq_len=32", "--config.batch_size=16", "--config.eval.batch_size=16",
        "--config.train.steps=4", "--config.eval.every=0", "--config.train.progress=False"]


def train_on(config, *flags):
    """``pretrainx train`` of ``config`` in the case's workdir."""
    return ["train", "--config", config, "--workdir", "{w}", *flags]


def train(*flags):
    """The tiny byte-level GPT (``TINY``) with ``flags``."""
    return train_on(CONFIG, *TINY, *flags)


# setup: train the tiny run (4 steps, no eval: no best checkpoint) in {w}
TRAINED = ("python -m pretrainx.main " + " ".join(shlex.quote(a) for a in train()) +
           " > /dev/null 2>&1")

# (what, argv with {w} for the workdir and {d} for a scratch folder, setup shell command or "")
CASES = [
    ("train.steps = 0", train("--config.train.steps=0"), ""),
    ("train.steps = -5", train("--config.train.steps=-5"), ""),
    ("train.steps not a number", train("--config.train.steps=ten"), ""),
    ("train.log_every = 0", train("--config.train.log_every=0"), ""),
    ("train.log_every = 2.5", train("--config.train.log_every=2.5"), ""),
    ("checkpoint.every = 0", train("--config.checkpoint.every=0"), ""),
    ("checkpoint.keep = 0", train("--config.checkpoint.keep=0"), ""),
    ("checkpoint.best_mode = 'maximum'", train("--config.checkpoint.best_mode=maximum"), ""),
    ("checkpoint.best_metric misspelt", train("--config.checkpoint.best_metric=val/los",
                                             "--config.eval.every=2"), ""),
    ("batch_size = 0", train("--config.batch_size=0"), ""),
    ("batch_size indivisible by the devices", train("--config.batch_size=12"), ""),
    ("eval.batch_size indivisible", train("--config.eval.batch_size=12", "--config.eval.every=2"), ""),
    ("eval.every = -1", train("--config.eval.every=-1"), ""),
    ("eval.num_batches = -1", train("--config.eval.num_batches=-1", "--config.eval.every=2"), ""),
    ("data.seq_len = 0", train("--config.data.seq_len=0"), ""),
    ("data.seq_len > model.max_len", train("--config.data.seq_len=64"), ""),
    ("data.val_fraction = 1", train("--config.data.val_fraction=1.0"), ""),
    ("data.val_fraction = 0 with evals", train("--config.data.val_fraction=0.0",
                                               "--config.eval.every=2"), ""),
    ("data.max_bytes = -1", train("--config.data.max_bytes=-1"), ""),
    ("data.path missing", train("--config.data.path={d}/nope.txt"), ""),
    ("data.path empty file", train("--config.data.path={d}/empty.txt"), "touch {d}/empty.txt"),
    ("data.path a directory", train("--config.data.path={d}"), ""),
    ("data.path = ''", train("--config.data.path="), ""),
    ("data.kind unknown", train("--config.data.kind=parquet"), ""),
    ("data.tokenizer 'bpe:abc'", train("--config.data.tokenizer=bpe:abc"), ""),
    ("data.tokenizer a missing file", train("--config.data.tokenizer={d}/tok.json"), ""),
    ("data.decode_errors unknown", train("--config.data.decode_errors=ignore"), ""),
    ("non-UTF-8 text, char tokenizer, strict",
     train("--config.data.path={d}/latin1.txt", "--config.data.tokenizer=char",
           "--config.data.decode_errors=strict", "--config.data.max_bytes=0"),
     "python -c \"open('{d}/latin1.txt','wb').write(('caf\\xe9 '*3000).encode('latin-1'))\""),
    ("model.vocab_size below the tokenizer's", train("--config.model.vocab_size=100"), ""),
    ("model.num_heads not dividing embed_dim", train("--config.model.num_heads=3"), ""),
    ("objective unknown", train("--config.objective=mlmx"), ""),
    ("optimizer.schedule unknown", train("--config.optimizer.schedule=linear"), ""),
    ("optimizer.lr = -0.1", train("--config.optimizer.lr=-0.1"), ""),
    ("optimizer.grad_accum = 0", train("--config.optimizer.grad_accum=0"), ""),
    ("optimizer.ema_decay = 1", train("--config.optimizer.ema_decay=1.0"), ""),
    ("mesh.data = 3 on 8 devices", train("--config.mesh.data=3"), ""),
    ("model.num_heads = 0", train("--config.model.num_heads=0"), ""),
    ("model.num_layers = 0", train("--config.model.num_layers=0"), ""),
    ("model.dropout = 1", train("--config.model.dropout=1.0"), ""),
    ("model.dtype unknown", train("--config.model.dtype=fp16"), ""),
    ("optimizer.b2 = 1", train("--config.optimizer.b2=1.0"), ""),
    ("optimizer.decay_steps = -1", train("--config.optimizer.decay_steps=-1"), ""),
    ("train.preemption_check_every = 0", train("--config.train.preemption_check_every=0"), ""),
    ("data.seq_len not a number", train("--config.data.seq_len=long"), ""),
    ("non-UTF-8 text, char tokenizer, replace (the default)",
     train("--config.data.path={d}/latin1.txt", "--config.data.tokenizer=char",
           "--config.data.max_bytes=0", "--config.model.vocab_size=256"),
     "python -c \"open('{d}/latin1.txt','wb').write(('caf\\xe9 '*3000).encode('latin-1'))\""),
    ("eval.num_batches = 0 with evals", train("--config.eval.num_batches=0",
                                              "--config.eval.every=2"), ""),
    ("sample.temperature = -1 (used at each eval)", train("--config.sample.temperature=-1.0",
                                                          "--config.eval.every=2"), ""),
    ("init_from.workdir missing", train("--config.init_from.workdir={d}/no_run"), ""),
    ("unknown config key", train("--config.optimizer.lrr=1"), ""),
    ("config file missing", ["train", "--config", "{d}/no.py", "--workdir", "{w}"], ""),
    ("config variant unknown", ["train", "--config", "configs/gpt/shakespeare_char.py:tiny",
                                "--workdir", "{w}"], ""),
    ("workdir is a file", train(), "rm -rf {w} && touch {w}"),
    ("workdir under a file", ["train", "--config", CONFIG, "--workdir", "{d}/f/sub", *TINY],
     "touch {d}/f"),
    ("train --help", ["train", "--help"], ""),
    ("diffusion.timesteps = 10 (linear betas)",
     ["train", "--config", "configs/diffusion/digits_smoke.py", "--workdir", "{w}",
      "--config.diffusion.timesteps=10"], ""),
    ("eval on a folder that is no run", ["eval", "--workdir", "{d}"], ""),
    ("sample with a prompt longer than the context", ["sample", "--workdir", "{d}/run",
                                                      "--prompt", "x" * 100],
     "python -m pretrainx.main " + " ".join(shlex.quote(a) for a in train()).replace(
         "{w}", "{d}/run") + " > /dev/null 2>&1"),
    ("rerun of a finished run", train(), TRAINED),
    ("resume with train.steps below the saved step", train("--config.train.steps=2"), TRAINED),
    ("config.json deleted, then resume", train("--config.train.steps=6"),
     TRAINED + "; rm {w}/config.json"),
    ("sample --temperature -1", ["sample", "--workdir", "{w}", "--temperature", "-1"], TRAINED),
    ("sample --max-new-tokens -5", ["sample", "--workdir", "{w}", "--max-new-tokens", "-5"],
     TRAINED),
    ("sample --top-k -1", ["sample", "--workdir", "{w}", "--top-k", "-1"], TRAINED),
    ("eval --checkpoint best when none was kept", ["eval", "--workdir", "{w}", "--checkpoint",
                                                   "best"], TRAINED),
    ("sample on a run that saved no checkpoint", ["sample", "--workdir", "{w}"],
     TRAINED + "; rm -r {w}/checkpoints"),
    ("eval with a corrupt config.json", ["eval", "--workdir", "{w}"],
     TRAINED + "; printf '{{\"trunc' > {w}/config.json"),
    ("corrupt provenance.json on resume", train("--config.train.steps=6"),
     TRAINED + "; printf '{{\"git' > {w}/provenance.json"),
    ("corrupt config.json on resume", train(),
     "python -m pretrainx.main " + " ".join(shlex.quote(a) for a in train()) +
     " > /dev/null 2>&1; echo '{{\"trunc' > {w}/config.json"),
]

# Issue 24, part A: readers, objective ranges, tools that exited 0 with nothing (a list of its own,
# same shape as CASES; {d}/x files are made by the setup command)
DPO = "configs/rlhf/shakespeare_dpo.py:smoke"
T5 = "configs/t5/t5_small.py:smoke"
PY = "python -c "


def pairs_file(*lines):
    """A setup writing {d}/p.jsonl: a good pair, then ``lines`` (raw text), then a good pair."""
    good = '{"prompt": "a", "chosen": "b", "rejected": "c"}'
    text = "\n".join([good, *lines, good]) + "\n"
    return PY + shlex.quote(f"open('{{d}}/p.jsonl', 'w').write({text!r})")


def dpo(*flags):
    return train_on(DPO, "--config.data.path={d}/p.jsonl", *flags)


def make_png_folder(odd: str):
    """A setup making {d}/img/{a,b}/*.png (8x8 grey) and then ``odd`` (Python)."""
    return PY + shlex.quote(
        "import os, numpy as np; from PIL import Image\n"
        "for c in 'ab':\n"
        "    os.makedirs(f'{d}/img/{c}', exist_ok=True)\n"
        "    for i in range(3): Image.fromarray(np.full((8, 8), 9 * i, np.uint8)).save("
        "f'{d}/img/{c}/{i}.png')\n" + odd)


CIFAR = "configs/diffusion/cifar10_ddpm.py:jpeg"
PPO = "configs/rlhf/shakespeare_ppo.py:smoke"
CASES_INPUTS = [
    ("pairs: line 2 not JSON (a record cut short)", dpo(),
     pairs_file('{"prompt": "x"', '{"prompt": "a"}')),
    ("pairs: \"scores\" not two numbers", dpo(),
     pairs_file('{"prompt": "a", "chosen": "b", "rejected": "c", "scores": "high"}')),
    ("pairs: a truncated .jsonl.gz", train_on(DPO, "--config.data.path={d}/p.jsonl.gz"),
     PY + shlex.quote("import gzip; b = gzip.compress(b'{\"prompt\": \"a\", \"chosen\": "
                      "\"b\", \"rejected\": \"c\"}\\n' * 500); "
                      "open('{d}/p.jsonl.gz', 'wb').write(b[:len(b) // 2])")),
    ("jsonl: a record that is a number",
     train("--config.data.kind=jsonl", "--config.data.path={d}/t.jsonl"),
     "printf '{\"text\": \"ok\"}\\n42\\n' > {d}/t.jsonl"),
    ("jsonl: data.text_key misspelt", train("--config.data.kind=jsonl",
                                            "--config.data.path={d}/t.jsonl",
                                            "--config.data.text_key=txt"),
     "printf '{\"text\": \"ok\"}\\n' > {d}/t.jsonl"),
    ("text: data.path a binary file", train("--config.data.path={d}/a.npy"),
     PY + shlex.quote("import numpy as np; np.save('{d}/a.npy', np.arange(1000))")),
    ("text: data.path a folder", train("--config.data.kind=text_files", "--config.data.path={d}/*"),
     "mkdir {d}/sub"),
    ("images: a .png that is text", train_on(CIFAR, "--config.data.path={d}/img"),
     make_png_folder("open('{d}/img/b/x.png', 'w').write('not an image')")),
    ("images: sizes differ, no data.image_size", train_on(CIFAR, "--config.data.path={d}/img"),
     make_png_folder("Image.fromarray(np.zeros((16, 12), np.uint8)).save('{d}/img/b/big.png')")),
    ("images: a truncated tar archive", train_on(CIFAR, "--config.data.path={d}/tars"),
     make_png_folder("import tarfile; os.makedirs('{d}/tars'); t = tarfile.open("
                     "'{d}/tars/x-cat.tar', 'w'); t.add('{d}/img/a', 'a'); t.close(); "
                     "b = open('{d}/tars/x-cat.tar', 'rb').read(); "
                     "open('{d}/tars/x-cat.tar', 'wb').write(b[:700])")),
    ("idx: a text file named as the images",
     train_on("configs/diffusion/fashion_mnist_ddpm.py:smoke", "--config.data.path={d}"),
     "echo hello > {d}/train-images-idx3-ubyte"),
    ("tokenizer: a char tokenizer.json without its chars",
     train("--config.data.tokenizer={d}/tok.json"),
     "echo '{\"pretrainx_kind\": \"char\"}' > {d}/tok.json"),
    ("t5: noise_density x row < 1 token", train_on(T5, "--config.span.noise_density=0.01"), ""),
    ("prefix_lm: min_length >= seq_len", train_on("configs/ul2/prefix_lm_char.py:smoke",
                                                  "--config.prefix.min_length=4096"), ""),
    ("clm_mlm: mixture.mlm_weight = 1.5", train_on("configs/ul2/clm_mlm_char.py:smoke",
                                                   "--config.mixture.mlm_weight=1.5"), ""),
    ("mlm: rate_schedule unknown", train_on("configs/bert/bert_base.py:smoke",
                                            "--config.mlm.rate_schedule=step"), ""),
    ("reward: margin < 0", train_on("configs/rlhf/shakespeare_reward.py:smoke",
                                    "--config.reward.margin=-1.0"), ""),
    ("ppo: minibatches not dividing the batch", train_on(PPO, "--config.ppo.minibatches=7"), ""),
    ("ppo: lam = -0.1", train_on(PPO, "--config.ppo.lam=-0.1"), ""),
    ("ddpm: ddim steps > timesteps", train_on("configs/diffusion/digits_smoke.py",
                                              "--config.sample.sampler=ddim",
                                              "--config.sample.steps=5000"), ""),
    ("flow: logit_std = 0", train_on("configs/diffusion/fashion_mnist_flow.py:smoke",
                                     "--config.flow.logit_std=0.0"), ""),
    ("meanflow: norm_eps = 0", train_on("configs/diffusion/digits_meanflow.py:smoke",
                                        "--config.meanflow.norm_eps=0.0"), ""),
    ("classify: num_classes below the data's",
     train_on("configs/finetune/speakers_bert.py:smoke", "--config.eval.batch_size=64",
              "--config.classify.num_classes=5"), ""),
    ("eval with data.val_fraction = 0", ["eval", "--workdir", "{w}",
                                         "--config.data.val_fraction=0.0"], TRAINED),
    ("eval with eval.num_batches = 0", ["eval", "--workdir", "{w}",
                                        "--config.eval.num_batches=0"], TRAINED),
    ("tokenizer train --vocab-size 0", ["tokenizer", "train", "--corpus", "{d}/c.txt",
                                        "--vocab-size", "0", "--out", "{d}/tok"],
     "echo hello > {d}/c.txt"),
    ("tokenizer train on non-UTF-8 text", ["tokenizer", "train", "--corpus", "{d}/c.txt",
                                           "--vocab-size", "500", "--out", "{d}/tok"],
     PY + shlex.quote("open('{d}/c.txt', 'wb').write(('caf\\xe9 ' * 99).encode('latin-1'))")),
    ("tokenizer encode with a garbage tokenizer", ["tokenizer", "encode", "--tokenizer",
                                                   "{d}/t.json", "--text", "hi"],
     "echo 'garbage' > {d}/t.json"),
    ("tokenize a folder holding an empty file", ["tokenize", "{d}/src", "--tokenizer", "byte",
                                                 "--out", "{d}/out"],
     "mkdir {d}/src && echo text > {d}/src/a.txt && touch {d}/src/b.txt"),
    ("ngram --val-fraction 0", ["ngram", "--text", "{d}/c.txt", "--val-fraction", "0"],
     "echo hello there > {d}/c.txt"),
    ("ngram on a binary file", ["ngram", "--text", "{d}/a.npy"],
     PY + shlex.quote("import numpy as np; np.save('{d}/a.npy', np.arange(1000))")),
]


def classify(code: int, stderr: str, stdout: str, expect_ok: bool = False) -> str:
    """traceback | clear | silent: a bad input must end in one error line (exit 2) or exit 0
    with a warning (or the usage it was asked for); ``expect_ok``: a case that must succeed."""
    if "Traceback" in stderr:
        return "traceback"
    if expect_ok:
        return "clear" if code == 0 else "silent"
    said = any(line.startswith("WARNING") for line in stderr.splitlines())
    if code == 2 and "pretrainx: error:" in stderr:
        return "clear"
    if code == 0 and (said or "usage:" in stdout + stderr):
        return "clear"
    return "silent"


def last_said(stderr: str, stdout: str) -> str:
    """The error, else the last warning (a tolerated input must say so), else the last line."""
    err = [line for line in stderr.strip().splitlines() if line.strip()]
    said = [line for line in err if line.startswith(("pretrainx:", "WARNING"))]
    return (said or err or stdout.strip().splitlines() or [""])[-1]


#: setups many cases start with (a trained run): made once per probe, copied into each case
SHARED_SETUPS: list[str] = [TRAINED]
_made: dict[str, str] = {}


def _shell(script: str, d: str, env) -> None:
    """``script`` with {w} = d/w and {d} = d; "python" is this interpreter (the one with
    pretrainx's dependencies)."""
    script = script.replace("{w}", os.path.join(d, "w")).replace("{d}", d)
    subprocess.run(script.replace("python ", shlex.quote(sys.executable) + " "), shell=True,
                   cwd=ROOT, env=env, check=False)


def prepare(setup: str, d: str, env) -> None:
    """Run ``setup`` in ``d``; a shared setup it starts with is made once and copied."""
    shared = max((s for s in SHARED_SETUPS if setup.startswith(s)), key=len, default="")
    if shared:
        if shared not in _made:
            _made[shared] = tempfile.mkdtemp(prefix="probe_shared_")
            _shell(shared, _made[shared], env)
        shutil.copytree(_made[shared], d, dirs_exist_ok=True, symlinks=True)
        setup = setup[len(shared):].lstrip("; ")
    if setup:
        _shell(setup, d, env)


def run_case(what, argv, setup, env, expect_ok=False):
    with tempfile.TemporaryDirectory() as d:
        w = os.path.join(d, "w")
        fill = lambda s: s.replace("{w}", w).replace("{d}", d)
        prepare(setup, d, env)
        cmd = [sys.executable, "-m", "pretrainx.main", *[fill(a) for a in argv]]
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    kind = classify(p.returncode, p.stderr, p.stdout, expect_ok)
    # the tiny flags every case shares are left out; $SMOKE stands for the smoke config
    shown = " ".join("$SMOKE" if a == CONFIG else a.replace("|", "\\|")
                     for a in argv if a not in TINY)
    tb = " (traceback)" if kind == "traceback" else ""
    said = last_said(p.stderr, p.stdout).replace(w, "{w}").replace(d, "{d}")
    row = f"| {what} | `pretrainx {shown}` | {p.returncode}{tb} | {said[:240]} |"
    return row, kind


def tables():
    """(name, cases) of every table; a case is (what, argv, setup[, expect_ok])."""
    import robustness_cases   # experiments/: the chain and sweep cases of issue 24 part B
    SHARED_SETUPS.extend(robustness_cases.SHARED_SETUPS)
    return [("bad inputs (issue 9)", CASES),
            # part A's table (issue 24: readers, objective ranges, tools), once merged
            ("inputs (issue 24 A)", globals().get("CASES_INPUTS", [])),
            ("chains and sweeps (issue 24 B)", robustness_cases.CASES_CHAINS),
            ("class members the issue did not name (issue 24)", robustness_cases.CASES_MEMBERS)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--only", action="append", default=[],
                   help="run the cases whose name holds this text (repeatable)")
    p.add_argument("--table", action="append", default=[],
                   help="run the tables whose name holds this text (repeatable; 'faults' too)")
    args = p.parse_args()
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_PLATFORMS": "cpu"}
    env.pop("PRETRAINX_DEBUG", None)
    pick = lambda name, items: [c for c in items if not args.only or any(o in c[0] for o in args.only)] \
        if not args.table or any(t in name for t in args.table) else []
    counts = {"traceback": 0, "silent": 0, "clear": 0, "survived": 0}
    for name, cases in tables():
        chosen = pick(name, cases)
        if chosen:
            print(f"\n### {name}\n\n| input | command | exit | what pretrainx says (last line "
                  f"of stderr) |\n|---|---|---|---|", flush=True)
        for case in chosen:
            row, kind = run_case(*case[:3], env, *case[3:])
            counts[kind] += 1
            print(row, flush=True)
    import robustness_faults   # experiments/: each fault injected for real, then checked
    chosen = pick("faults", robustness_faults.FAULTS)
    if chosen:
        print("\n### faults\n\n| fault | exit codes | outcome | what pretrainx says |\n"
              "|---|---|---|---|", flush=True)
    for what, inject in chosen:
        with tempfile.TemporaryDirectory() as d:
            codes, ok, said, stderr = inject(d, env)
        kind = "traceback" if "Traceback" in stderr else ("survived" if ok else "silent")
        counts[kind] += 1
        print(f"| {what} | {codes} | {kind} | {said[:240]} |", flush=True)
    print(f"\ncounts: {counts['traceback']} tracebacks, {counts['silent']} silent or wrong, "
          f"{counts['clear']} clear errors, {counts['survived']} survived faults", flush=True)


if __name__ == "__main__":
    main()
