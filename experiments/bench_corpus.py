"""Corpus scale: `pretrainx tokenize` and the `shards` data kind on corpora far above the shared data.

    nice -n 15 python experiments/bench_corpus.py --sizes-mb 100 --workers 1 2 [--read-gb 1]
                                                  [--nanogpt] [--mixture] [--tmp DIR] [--json OUT]

Builds a JSONL corpus of each size in a temp folder from ../shared/data (Tiny Shakespeare and
WikiText-2 paragraphs, HH-RLHF dialogues; documents repeated and shuffled with seed 0), trains a
BPE-8000 on the shared text, then measures in subprocesses

* tokenize: wall seconds, MB/s of source and the peak resident memory of the process tree
  (the reader and its workers, sampled every 50 ms) for each ``--workers``;
* with ``--nanogpt``: the same corpus through nanoGPT's prepare.py approach (HF ``datasets``
  ``map`` with ``num_proc`` workers, then one memmapped ``.bin``), with the same tokenizer
  (tiktoken's GPT-2 file cannot be downloaded here), same measurements;
* reading: a ``--read-gb`` shards folder (the largest tokenized folder's shards hard-linked
  over and over: the reader does not care how they were made): seconds and resident memory to the
  first batch in a fresh process, and host batches/s of 32 x 1024 windows on one core; seconds
  from a fresh ``pretrainx train`` process to its first logged step on the folder;
* the storage choice: random 1025-token windows from memory-mapped .npy vs ArrayRecord records;
* with ``--mixture``: host batches/s of a 0.7/0.3 mixture of two shards folders vs one folder,
  and of the one folder's windows packed where documents begin (``data.packing='concat'``).

Not a test: the numbers go to experiments/corpus_scale.md with the machine and its load.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "data")


def shared_documents() -> list[str]:
    import gzip
    with open(os.path.join(SHARED, "tinyshakespeare", "input.txt"), encoding="utf-8") as f:
        docs = [p for p in f.read().split("\n\n") if p.strip()]
    with open(os.path.join(SHARED, "wikitext-2", "valid.txt"), encoding="utf-8") as f:
        docs += [p for p in f.read().split("\n \n") if p.strip()]
    with gzip.open(os.path.join(SHARED, "hh-rlhf", "harmless-base-test.jsonl.gz"), "rt") as f:
        docs += [json.loads(line)["chosen"] for line in f if line.strip()]
    return docs


def make_corpus(path: str, size_mb: float, docs: list[str]) -> str:
    """JSONL of ``docs`` repeated, each round shuffled (seed 0), until ``size_mb`` MB (kept from
    an earlier run in the same --tmp)."""
    if os.path.exists(path) and os.path.getsize(path) >= size_mb * 1e6:
        return path
    rng, written = random.Random(0), 0
    with open(path, "w", encoding="utf-8") as f:
        while written < size_mb * 1e6:
            order = list(range(len(docs)))
            rng.shuffle(order)
            for i in order:
                line = json.dumps({"text": docs[i]}) + "\n"
                f.write(line)
                written += len(line.encode())
                if written >= size_mb * 1e6:
                    break
    return path


def measure(command: list[str], env=None) -> dict:
    """Wall seconds, CPU seconds (user + system of the whole tree: on a shared machine the wall
    time says more about the other jobs than about the command) and the peak summed RSS (MB) of
    ``command``'s process tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    peak, root = 0, psutil.Process(proc.pid)

    def sample():
        nonlocal peak
        while proc.poll() is None:
            try:
                tree = [root] + root.children(recursive=True)
                peak = max(peak, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass
            time.sleep(0.05)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    sampler.join()
    if proc.returncode:
        raise RuntimeError(f"{command[:4]} failed:\n{out[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": round(time.perf_counter() - start, 2), "cpu_seconds": round(cpu, 1),
            "peak_rss_mb": round(peak / 1e6, 1),
            "output": out.strip().splitlines()[-1] if out.strip() else ""}


def env() -> dict:
    return dict(os.environ, PYTHONPATH=ROOT)


def tokenize_run(corpus: str, tokenizer: str, out: str, workers: int, shard_mb: float) -> dict:
    result = measure([sys.executable, "-m", "pretrainx.main", "tokenize", corpus, "--tokenizer",
                      tokenizer, "--out", out, "--workers", str(workers),
                      "--shard-mb", str(shard_mb)], env())
    return with_rates(result, corpus)


def with_rates(result: dict, corpus: str) -> dict:
    mb = os.path.getsize(corpus) / 1e6
    result["mb_per_s"] = round(mb / result["seconds"], 3)
    result["mb_per_cpu_s"] = round(mb / max(result["cpu_seconds"], 1e-9), 3)
    return result


NANOGPT = r"""
import sys, numpy as np, datasets, tokenizers
corpus, tok_file, out, workers = sys.argv[1:5]
tok = tokenizers.Tokenizer.from_file(tok_file)
eot = tok.token_to_id("</s>")
def process(example):
    ids = tok.encode(example["text"], add_special_tokens=False).ids + [eot]
    return {"ids": ids, "len": len(ids)}
ds = datasets.load_dataset("json", data_files=corpus, split="train")
ds = ds.map(process, remove_columns=["text"], num_proc=int(workers))
total = int(np.sum(ds["len"], dtype=np.uint64))
arr = np.memmap(out, dtype=np.uint16, mode="w+", shape=(total,))
idx = 0
for k in range(1024):
    batch = ds.shard(num_shards=1024, index=k, contiguous=True).with_format("numpy")
    chunk = np.concatenate(batch["ids"]) if len(batch) else np.zeros(0, np.uint16)
    arr[idx: idx + len(chunk)] = chunk
    idx += len(chunk)
arr.flush()
print(f"{total} tokens")
"""


def nanogpt_run(corpus: str, tokenizer: str, out: str, workers: int, tmp: str) -> dict:
    """nanoGPT's prepare.py way (re-implemented, not copied), with our tokenizer file."""
    cache = os.path.join(tmp, f"hf_cache_{workers}")
    result = measure([sys.executable, "-c", NANOGPT, corpus,
                      os.path.join(tokenizer, "tokenizer.json"), out, str(workers)],
                     dict(env(), HF_DATASETS_CACHE=cache, HF_HUB_OFFLINE="1",
                          TOKENIZERS_PARALLELISM="false"))
    return with_rates(result, corpus)


def replicate(folder: str, out: str, target_gb: float) -> str:
    """A shards folder of about ``target_gb`` GB of tokens: ``folder``'s shards hard-linked
    again and again, with a manifest listing them all (reading cost does not depend on content)."""
    from pretrainx.data import shards
    manifest = shards.read_json(os.path.join(folder, shards.MANIFEST))
    os.makedirs(out, exist_ok=True)
    os.link(os.path.join(folder, shards.TOKENIZER), os.path.join(out, shards.TOKENIZER))
    records, size = [], 0
    while size < target_gb * 1e9:
        for record in manifest["shards"]:
            name = shards.shard_name(len(records))
            for suffix in (".tokens.npy", ".docs.npy"):
                os.link(os.path.join(folder, record["name"] + suffix),
                        os.path.join(out, name + suffix))
            records.append(dict(record, name=name))
            size += os.path.getsize(os.path.join(out, name + ".tokens.npy"))
    tokens = sum(r["tokens"] for r in records)
    cut = tokens - manifest["split"]["val_tokens"]
    split = dict(manifest["split"], train_tokens=cut)
    shards.write_json(os.path.join(out, shards.MANIFEST),
                      dict(manifest, shards=records, tokens=tokens, split=split,
                           docs=sum(r["docs"] for r in records)))
    return out


FIRST_BATCH = r"""
import sys, time, json
start = time.perf_counter()
import psutil
from pretrainx import data
from pretrainx.config import text
config = text.shards_data(seq_len=1024)
if sys.argv[1].startswith("sources="):    # a mixture: "sources=name:folder:weight,..."
    config.sources = sys.argv[1][len("sources="):]
else:
    config.path = sys.argv[1]
config.packing = sys.argv[3] if len(sys.argv) > 3 else "stream"
dataset = data.build(config, batch_size=32, eval_batch_size=32, seq_len=1024, seed=0)
dataset.train.get_batch(0)
first = time.perf_counter() - start
info = psutil.Process().memory_info()
rss_first, private_first = info.rss, info.rss - info.shared
start = time.perf_counter()
n = int(sys.argv[2])
for i in range(1, n + 1):
    dataset.train.get_batch(i)
seconds = time.perf_counter() - start
print(json.dumps({"first_batch_s": round(first, 3), "rss_at_first_batch_mb": round(rss_first / 1e6, 1),
                  "private_at_first_batch_mb": round(private_first / 1e6, 1),
                  "tokens_per_s": round(n * 32 * 1024 / seconds),
                  "rss_after_mb": round(psutil.Process().memory_info().rss / 1e6, 1),
                  "private_after_mb": round((psutil.Process().memory_info().rss
                                             - psutil.Process().memory_info().shared) / 1e6, 1),
                  "train_tokens": dataset.info["train_tokens"]}))
"""


def read_run(folder: str, batches: int, packing: str = "stream") -> dict:
    # one core: the reader is single-threaded; taskset keeps it honest on a shared machine
    command = ["taskset", "-c", "0", sys.executable, "-c", FIRST_BATCH, folder, str(batches),
               packing]
    out = subprocess.run(command, env=env(), capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def storage_choice(folder: str, tmp: str, draws: int = 300) -> dict:
    """Random 1025-token windows per second: memory-mapped .npy vs ArrayRecord chunks of 4096."""
    from array_record.python import array_record_module as ar
    from pretrainx.data import shards
    manifest = shards.read_json(os.path.join(folder, shards.MANIFEST))
    tokens = np.concatenate([np.load(os.path.join(folder, s["name"] + ".tokens.npy"), mmap_mode="r")
                             for s in manifest["shards"][:4]])
    chunk, path = 4096, os.path.join(tmp, "tokens.array_record")
    start = time.perf_counter()
    writer = ar.ArrayRecordWriter(path, "group_size:1")
    for i in range(0, len(tokens) - chunk + 1, chunk):
        writer.write(tokens[i:i + chunk].tobytes())
    writer.close()
    write_s = time.perf_counter() - start
    reader = ar.ArrayRecordReader(path)
    starts = np.random.default_rng(0).integers(0, (reader.num_records() - 1) * chunk, draws)
    start = time.perf_counter()
    for s in starts:
        first = int(s) // chunk
        records = reader.read([first, first + 1])
        joined = np.frombuffer(b"".join(records), tokens.dtype)
        _ = joined[s - first * chunk: s - first * chunk + 1025]
    ar_rate = draws / (time.perf_counter() - start)
    stream = shards.ShardStream([tokens])
    start = time.perf_counter()
    for s in starts:
        stream.read(int(s), 1025)
    mm_rate = draws / (time.perf_counter() - start)
    return {"array_record_windows_per_s": round(ar_rate), "memmap_windows_per_s": round(mm_rate),
            "array_record_write_s": round(write_s, 2), "tokens": int(len(tokens))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes-mb", type=float, nargs="+", default=[100])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--nanogpt", action="store_true")
    p.add_argument("--shard-mb", type=float, default=32.0, help="tokenize --shard-mb")
    p.add_argument("--read-gb", type=float, default=1.0, help="0: no reading measurements")
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--mixture", action="store_true",
                   help="also host batches/s of a 0.7/0.3 mixture of two folders, and of packed "
                        "rows, vs one folder's windows")
    p.add_argument("--tmp", default="")
    p.add_argument("--json", default="")
    args = p.parse_args(argv)
    tmp = args.tmp or tempfile.mkdtemp(prefix="corpus_scale_")
    results = {"machine": f"{os.cpu_count()} CPUs, load {os.getloadavg()}", "runs": []}
    from pretrainx.data import subword
    tok_dir = os.path.join(tmp, "bpe8000")
    docs = shared_documents()
    if not os.path.exists(tok_dir):
        subword.train_from_texts(docs, "bpe", 8000).save(tok_dir)
    folder = None
    for size in args.sizes_mb:
        corpus = make_corpus(os.path.join(tmp, f"corpus_{size:g}mb.jsonl"), size, docs)
        for workers in args.workers:
            folder = os.path.join(tmp, f"shards_{size:g}mb_w{workers}")
            shutil.rmtree(folder, ignore_errors=True)
            run = dict(tokenize_run(corpus, tok_dir, folder, workers, args.shard_mb),
                       size_mb=size, workers=workers, tool="pretrainx tokenize")
            results["runs"].append(run)
            print(json.dumps(run), flush=True)
            if args.nanogpt:
                run = dict(nanogpt_run(corpus, tok_dir, os.path.join(tmp, "train.bin"), workers,
                                       tmp), size_mb=size, workers=workers, tool="datasets.map")
                results["runs"].append(run)
                print(json.dumps(run), flush=True)
    if args.read_gb:
        results.update(reading(folder, tmp, args.read_gb, args.batches))
    if args.mixture:
        results["mixture"] = mixture_reading(folder, tmp, args.batches)
    results["machine_after"] = f"load {os.getloadavg()}"
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print(f"temp folder: {tmp}")
    return 0


def reading(folder: str, tmp: str, read_gb: float, batches: int) -> dict:
    """The storage choice, then first batch / RSS / throughput on 0.1 GB and ``read_gb`` GB."""
    results = {"storage": storage_choice(folder, tmp)}
    print(json.dumps(results["storage"]), flush=True)
    for gb in sorted({0.1, read_gb}):
        shutil.rmtree(os.path.join(tmp, f"read_{gb:g}gb"), ignore_errors=True)
        big = replicate(folder, os.path.join(tmp, f"read_{gb:g}gb"), gb)
        results[f"read_{gb:g}gb"] = dict(read_run(big, batches), **train_start(big, tmp))
        print(gb, json.dumps(results[f"read_{gb:g}gb"]), flush=True)
    return results


def train_start(folder: str, tmp: str) -> dict:
    """Seconds from a fresh ``pretrainx train`` process to its first logged step on ``folder``
    (GPT-2's ``:shards,smoke`` recipe, its table widened to the folder's BPE-8000), twice: the
    first compiles, the second loads the step from JAX's compilation cache (``train.compile_cache``)."""
    result = {}
    for attempt in ("first", "second"):
        workdir = os.path.join(tmp, f"train_start_{attempt}")
        shutil.rmtree(workdir, ignore_errors=True)
        command = [sys.executable, "-m", "pretrainx.main", "train", "--config",
                   os.path.join(ROOT, "configs/gpt/gpt2_124m.py:shards,smoke"), "--workdir",
                   workdir, f"--config.data.path={folder}", "--config.model.vocab_size=8192",
                   "--config.train.steps=3", "--config.train.log_every=1", "--config.eval.every=0",
                   "--config.train.progress=false"]
        start = time.perf_counter()
        proc = subprocess.Popen(command, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        rows, first = os.path.join(workdir, "metrics.jsonl"), None
        while proc.poll() is None and first is None:
            if os.path.exists(rows) and '"train/loss"' in open(rows).read():
                first = time.perf_counter() - start
            time.sleep(0.02)
        _, stderr = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"bench_corpus: train on {folder} failed:\n{stderr[-2000:]}")
        result[f"{attempt}_step_logged_s"] = round(first or time.perf_counter() - start, 2)
    return result


def mixture_reading(folder: str, tmp: str, batches: int, repeats: int = 3) -> dict:
    """Host tokens/s of 32 x 1024 batches from one 0.2 GB folder, from a 0.7/0.3 mixture of it
    and a 0.1 GB folder, and from the one folder's windows packed where documents begin
    (``data.packing='concat'``), in turns (``repeats`` each, the best kept: the machine is
    shared)."""
    one = replicate(folder, os.path.join(tmp, "mix_one"), 0.2)
    other = replicate(folder, os.path.join(tmp, "mix_other"), 0.1)
    runs = {"one_source": (one, "stream"),
            "mixture_0.7_0.3": (f"sources=a:{one}:0.7,b:{other}:0.3", "stream"),
            "one_source_concat": (one, "concat")}
    best = {name: 0 for name in runs}
    for _ in range(repeats):
        for name, (spec, packing) in runs.items():
            best[name] = max(best[name], read_run(spec, batches, packing)["tokens_per_s"])
    result = {f"{name}_tokens_per_s": rate for name, rate in best.items()}
    result.update({f"{name}_rows_per_s": round(rate / 1024) for name, rate in best.items()})
    print(json.dumps(result), flush=True)
    for path in (one, other):
        shutil.rmtree(path)
    return result


if __name__ == "__main__":
    sys.exit(main())
