"""Issue 24 part B's table for experiments/robustness_probe.py: chains (fine-tuning, reward and
PPO stages, DPO, reflow) that would load the wrong thing, and sweeps. ``{d}/parent`` is a tiny
byte-level GPT (the probe's ``TRAINED`` run), ``{d}/char`` a tiny char GPT on Tiny Shakespeare
whose vocabulary the preference pairs use, ``{d}/reward`` a reward run on it."""
from __future__ import annotations

import shlex

from robustness_probe import CONFIG, TINY, TRAINED, train, train_on

SHAKESPEARE = "/work/shared/data/tinyshakespeare/input.txt"
REWARD = "configs/rlhf/shakespeare_reward.py:smoke"
PPO = "configs/rlhf/shakespeare_ppo.py:smoke"
DPO = "configs/rlhf/shakespeare_dpo.py:smoke"
# the tiny model of every stage here: 1 layer, width 32, 64 positions (a prompt and a response)
SMALL = ["--config.model.num_layers=1", "--config.model.embed_dim=32", "--config.model.max_len=64",
         "--config.batch_size=16", "--config.eval.batch_size=16", "--config.train.steps=4",
         "--config.eval.every=0", "--config.train.progress=False"]
CHAR = [*SMALL, f"--config.data.path={SHAKESPEARE}", "--config.data.tokenizer=char",
        "--config.data.seq_len=64"]


def _sh(argv) -> str:
    return "python -m pretrainx.main " + " ".join(shlex.quote(a) for a in argv) + " > /dev/null 2>&1"


PARENT = _sh([a.replace("{w}", "{d}/parent") for a in train()])
CHAR_PARENT = _sh(["train", "--config", CONFIG, "--workdir", "{d}/char", *CHAR])


def stage(config, workdir, *flags):
    return ["train", "--config", config, "--workdir", workdir, *SMALL, *flags]


REWARD_RUN = CHAR_PARENT + "; " + _sh(stage(
    REWARD, "{d}/reward", "--config.init_from.workdir={d}/char", "--config.data.tokenizer={d}/char",
    "--config.reward.pool=mean"))
HOLD_LOCK = ("(python -c \"import fcntl,sys,time; f=open('{d}/parent/run.lock','a+'); "
             "fcntl.flock(f,fcntl.LOCK_EX); time.sleep(60)\" &) ; sleep 2")
SHARED_SETUPS = [PARENT, CHAR_PARENT, REWARD_RUN]   # made once per probe (robustness_probe.prepare)
# the sweep's metric is val/loss: the trials evaluate (TINY's eval.every=0 would be refused)
SWEEP = ["sweep", "--config", CONFIG, "--workdir", "{w}",
         *[a for a in TINY if not a.startswith("--config.eval.every")], "--config.eval.every=4"]

CASES_CHAINS = [
    ("fine-tune from a parent of another depth", train(
        "--config.init_from.workdir={d}/parent", "--config.model.num_layers=2"), PARENT),
    ("fine-tune from a parent of another width", train(
        "--config.init_from.workdir={d}/parent", "--config.model.embed_dim=64"), PARENT),
    ("fine-tune with another tokenizer (char, fit on the same text)", train(
        "--config.init_from.workdir={d}/parent", "--config.data.tokenizer=char"), PARENT),
    ("fine-tune from a parent that is still training (its run.lock held)", train(
        "--config.init_from.workdir={d}/parent"), PARENT + "; " + HOLD_LOCK),
    ("fine-tune from a step the parent never saved", train(
        "--config.init_from.workdir={d}/parent", "--config.init_from.step=99"), PARENT),
    ("fine-tune from 'best' of a parent that kept none", train(
        "--config.init_from.workdir={d}/parent", "--config.init_from.step=best"), PARENT),
    ("fine-tune from a parent whose checkpoints were deleted", train(
        "--config.init_from.workdir={d}/parent"), PARENT + "; rm -r {d}/parent/checkpoints"),
    ("fine-tune from a named step of a finished parent (fine)", train(
        "--config.init_from.workdir={d}/parent", "--config.init_from.step=4"), PARENT, True),
    ("reward model on a byte-level parent (pairs in a char vocabulary)", stage(
        REWARD, "{w}", "--config.init_from.workdir={d}/parent"), PARENT),
    ("reward model on the char parent without its tokenizer (fit on the pairs)", stage(
        REWARD, "{w}", "--config.init_from.workdir={d}/char"), CHAR_PARENT),
    ("reward model on the char parent, its tokenizer (the documented chain: fine)", stage(
        REWARD, "{w}", "--config.init_from.workdir={d}/char", "--config.data.tokenizer={d}/char"),
     CHAR_PARENT, True),
    ("PPO whose reward run is a pretraining run (no reward head, no reward.pool)", stage(
        PPO, "{w}", "--config.init_from.workdir={d}/char", "--config.data.path=" + SHAKESPEARE,
        "--config.data.tokenizer={d}/char", "--config.init_from.also.reward.workdir={d}/char"),
     CHAR_PARENT),
    ("PPO with a reward run pooled by mean (PPO scores the last token)", stage(
        PPO, "{w}", "--config.init_from.workdir={d}/char", "--config.data.path=" + SHAKESPEARE,
        "--config.data.tokenizer={d}/char", "--config.init_from.also.reward.workdir={d}/reward"),
     REWARD_RUN),
    ("PPO with the mean-pooled reward run and ppo.reward_pool=mean (fine)", stage(
        PPO, "{w}", "--config.init_from.workdir={d}/char", "--config.data.path=" + SHAKESPEARE,
        "--config.data.tokenizer={d}/char", "--config.init_from.also.reward.workdir={d}/reward",
        "--config.ppo.reward_pool=mean"), REWARD_RUN, True),
    ("DPO from a reward run (its policy would be a scalar head's trunk)", stage(
        DPO, "{w}", "--config.init_from.workdir={d}/reward", "--config.data.tokenizer={d}/char"),
     REWARD_RUN),
    ("reflow from a text run", ["train", "--config", "configs/diffusion/digits_reflow.py:smoke",
                                "--workdir", "{w}", "--config.init_from.workdir={d}/parent"], PARENT),
    ("sweep --trials 0", [*SWEEP, "--trials", "0"], ""),
    ("sweep --parallel 0", [*SWEEP, "--parallel", "0"], ""),
    ("sweep --pruner unknown", [*SWEEP, "--pruner", "hyperbandx"], ""),
    ("sweep of a config without get_sweep", ["sweep", "--config", DPO, "--workdir", "{w}"], ""),
    ("sweep with an unknown override", [*SWEEP, "--config.optimizer.lrr=1"], ""),
    ("sweep --storage in a missing folder", [*SWEEP, "--storage", "{d}/no/such/study.journal"], ""),
    ("sweep rerun with another base config", [*SWEEP, "--trials", "1",
                                              "--config.optimizer.warmup_steps=1"],
     _sh([*SWEEP, "--trials", "1"])),
]

def tokenize_case(name: str):
    return ["tokenize", "{d}/" + name, "--tokenizer", "byte", "--out", "{d}/out"]


def python_setup(code: str) -> str:
    return "python -c " + shlex.quote(code)


SHARDS = "configs/gpt/shakespeare_wiki_shards.py:smoke"
# a byte-level shards folder {d}/sh of 300 small documents, 12 shards
MAKE_SHARDS = (python_setup("open('{d}/c.txt', 'w').write('\\n\\n'.join("
                            "f'document {i} ' * 30 for i in range(300)))") +
               "; python -m pretrainx.main tokenize {d}/c.txt --tokenizer byte --out {d}/sh "
               "--shard-mb 0.01 --val-fraction 0.1 > /dev/null 2>&1")
ON_SHARDS = train_on(SHARDS, "--config.data.sources=", "--config.data.path={d}/sh",
                     "--config.model.num_layers=1", "--config.model.embed_dim=32",
                     "--config.train.steps=2", "--config.eval.every=0",
                     "--config.train.progress=False", "--config.batch_size=8",
                     "--config.eval.batch_size=8")
BAD_SWEEP = python_setup(
    "open('{d}/sw.py', 'w').write('from configs.gpt.shakespeare_char import get_config\\n"
    "from pretrainx.tools import sweep_def as sd\\ndef get_sweep(arg):\\n"
    "    return sd.search({\"optimizer.lr\": sd.loguniform(1e-2, 1e-4)}, trials=2)\\n')")
HF_FOLDER = "mkdir {d}/hf && echo x > {d}/hf/model.safetensors"
IMPORT_HF = ["import-hf", "{d}/hf", "--workdir", "{w}"]
GPT2_JSON = ('{\"model_type\": \"gpt2\", \"vocab_size\": 50, \"n_embd\": 32, '
             '\"n_layer\": 1, \"n_head\": 2, \"n_positions\": 32}')

# Members of each class of issue 24 that it did not name (the check that follows it): other
# corpus formats of `pretrainx tokenize`, damaged shards folders, the user's Python files
# (config, sweep, registry), Hugging Face folders, runs without a checkpoint.
CASES_MEMBERS = [
    ("tokenize: a truncated .jsonl.zst", tokenize_case("c.jsonl.zst"), python_setup(
        "import zstandard; b = zstandard.ZstdCompressor().compress(b'{\"text\": \"abc\"}\\n' "
        "* 5000); open('{d}/c.jsonl.zst', 'wb').write(b[:len(b) // 2])")),
    ("tokenize: a .zst that is not zstd", tokenize_case("c.jsonl.zst"),
     "echo hello > {d}/c.jsonl.zst"),
    ("tokenize: .jsonl.gz with a bad line 3", tokenize_case("c.jsonl.gz"), python_setup(
        "import gzip; open('{d}/c.jsonl.gz', 'wb').write(gzip.compress("
        "b'{\"text\": \"a\"}\\n{\"text\": \"b\"}\\n{\"text\": \\n'))")),
    ("tokenize: a Parquet file without the text column", tokenize_case("c.parquet"), python_setup(
        "import pyarrow as pa, pyarrow.parquet as pq; "
        "pq.write_table(pa.table({'body': ['a b c'] * 10}), '{d}/c.parquet')")),
    ("tokenize: a Parquet text column of numbers", tokenize_case("c.parquet"), python_setup(
        "import pyarrow as pa, pyarrow.parquet as pq; "
        "pq.write_table(pa.table({'text': [1, 2, 3]}), '{d}/c.parquet')")),
    ("tokenize: a .parquet that is text", tokenize_case("c.parquet"), "echo hello > {d}/c.parquet"),
    ("shards: a shard cut short", ON_SHARDS, MAKE_SHARDS + "; " + python_setup(
        "import os; f = '{d}/sh/shard_00000.tokens.npy'; os.truncate(f, os.path.getsize(f) // 2)")),
    ("shards: a shard's tokens deleted", ON_SHARDS,
     MAKE_SHARDS + "; rm {d}/sh/shard_00001.tokens.npy"),
    ("shards: manifest.json garbage", ON_SHARDS, MAKE_SHARDS + "; echo '{' > {d}/sh/manifest.json"),
    ("shards: a folder with no manifest", ON_SHARDS, "mkdir {d}/sh"),
    ("shards: another tokenizer than the shards'", [*ON_SHARDS, "--config.data.tokenizer={d}/tok"],
     MAKE_SHARDS + "; python -m pretrainx.main tokenizer train --corpus {d}/c.txt "
                   "--vocab-size 400 --out {d}/tok > /dev/null 2>&1"),
    ("ppo: eos of several tokens (its first one stopped every response)",
     train_on(PPO, "--config.ppo.eos=xyzzy"), ""),
    ("train: a config file with a syntax error", ["train", "--config", "{d}/c.py", "--workdir",
                                                  "{w}"], "echo 'def get_config(:' > {d}/c.py"),
    ("sweep: a search space with low > high", ["sweep", "--config", "{d}/sw.py", "--workdir",
                                               "{w}"], BAD_SWEEP),
    ("reproduce an unknown entry", ["reproduce", "no_such_entry"], ""),
    ("reproduce with a registry that is not Python", ["reproduce", "--list", "--registry",
                                                      "{d}/r.py"], "echo 'x = (' > {d}/r.py"),
    ("export-hf of a run with no checkpoint", ["export-hf", "--workdir", "{w}", "--out", "{d}/hf"],
     TRAINED + "; rm -r {w}/checkpoints"),
    ("export-hf of a folder that is no run", ["export-hf", "--workdir", "{d}", "--out",
                                              "{d}/hf"], ""),
    ("import-hf of a folder without config.json", IMPORT_HF, HF_FOLDER),
    ("import-hf of an unsupported architecture", IMPORT_HF, HF_FOLDER +
     "; echo '{\"model_type\": \"mamba\"}' > {d}/hf/config.json"),
    ("import-hf with a config.json cut short", IMPORT_HF, HF_FOLDER +
     "; echo '{\"model_type\": \"gpt2\"' > {d}/hf/config.json"),
    ("import-hf of a gpt2 folder with garbage safetensors", IMPORT_HF, HF_FOLDER +
     f"; echo '{GPT2_JSON}' > {{d}}/hf/config.json"),
]
