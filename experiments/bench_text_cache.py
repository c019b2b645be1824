"""The token cache of text runs (data/text_cache.py): start-up of a text data set before and after.

    nice -n 15 python experiments/bench_text_cache.py --size-mb 100 [--tokenizer byte] [--tmp DIR]

Builds a JSONL corpus of ``--size-mb`` from ../shared/data (bench_corpus.make_corpus: documents
repeated and shuffled, seed 0), then in fresh processes builds the ``jsonl`` data set of a text run
(``data.packing = "stream"``) and reads its first batch three ways: the cache off (what every
start did before), the first start with the cache on (it encodes and writes the entry), and a
second start (it reads the entry memory-mapped). Prints wall and CPU seconds and the peak
resident memory of each. Not a test: the numbers go to experiments/corpus_scale.md with the load.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_corpus  # noqa: E402  (its corpus builder and process-tree measurement)

FIRST_BATCH = r"""
import sys
from pretrainx.config import defaults
from pretrainx.data import base
corpus, tokenizer, cache_dir, min_mb = sys.argv[1:5]
config = defaults.with_defaults({"data": {"kind": "jsonl", "path": corpus, "tokenizer": tokenizer,
                                          "cache_dir": cache_dir, "cache_min_mb": float(min_mb)}})
data = base.build(config.data, batch_size=32, eval_batch_size=32, seq_len=1024, seed=0)
batch = data.train.get_batch(0)
print(data.info["train_tokens"], batch["inputs"].shape)
"""


def start(corpus: str, tokenizer: str, cache_dir: str, min_mb: float) -> dict:
    return bench_corpus.measure([sys.executable, "-c", FIRST_BATCH, corpus, tokenizer, cache_dir,
                                 str(min_mb)], bench_corpus.env())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-mb", type=float, default=100)
    p.add_argument("--tokenizer", default="byte")
    p.add_argument("--tmp", default="")
    args = p.parse_args(argv)
    tmp = args.tmp or tempfile.mkdtemp(prefix="pretrainx_text_cache_")
    os.makedirs(tmp, exist_ok=True)
    corpus = bench_corpus.make_corpus(os.path.join(tmp, f"corpus_{args.size_mb:g}mb.jsonl"),
                                      args.size_mb, bench_corpus.shared_documents())
    cache_dir = tempfile.mkdtemp(prefix="cache_", dir=tmp)
    results = {"corpus_mb": round(os.path.getsize(corpus) / 1e6, 1), "tokenizer": args.tokenizer,
               "load": os.getloadavg()[0],
               "uncached": start(corpus, args.tokenizer, cache_dir, 0.0),
               "first_start": start(corpus, args.tokenizer, cache_dir, 1.0),
               "second_start": start(corpus, args.tokenizer, cache_dir, 1.0)}
    results["load_after"] = os.getloadavg()[0]
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
