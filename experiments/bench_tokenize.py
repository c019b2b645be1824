"""Time tokenizing WikiText-2 valid (1.1 MB) with a byte-level BPE; target < 2 s on 2 CPU cores.

    python experiments/bench_tokenize.py                       # trains BPE-8000 on the file first
    python experiments/bench_tokenize.py --tokenizer DIR       # a saved tokenizer instead

Prints training time (when it trains), encoding seconds (best of --repeats), tokens/byte, and
whether the ids decode back to the exact text.
"""
import argparse
import os
import sys
import time

from pretrainx.data import subword, tokenizer

_DEFAULT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                         "shared", "data", "wikitext-2", "valid.txt"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default=_DEFAULT)
    parser.add_argument("--tokenizer", default="", help="saved tokenizer dir; default: train one")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if not os.path.exists(args.corpus):
        print(f"error: corpus file not found: {args.corpus}", file=sys.stderr)
        return 2
    if args.tokenizer:
        tok = tokenizer.load(args.tokenizer)
    else:
        start = time.perf_counter()
        tok = subword.train_tokenizer([args.corpus], "bpe", args.vocab_size)
        print(f"trained bpe-{tok.vocab_size} in {time.perf_counter() - start:.2f} s")
    with open(args.corpus, encoding="utf-8", newline="") as f:
        text = f.read()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        ids = subword.encode_corpus(tok, args.corpus, progress=False)
        times.append(time.perf_counter() - start)
    num_bytes = len(text.encode("utf-8"))
    print(f"tokenized {num_bytes} bytes in {min(times):.3f} s (best of {args.repeats}; "
          f"all {', '.join(f'{t:.3f}' for t in times)}) on {os.cpu_count()} CPU cores")
    print(f"{len(ids)} tokens = {len(ids) / num_bytes:.4f} tokens/byte; "
          f"exact round trip: {tok.decode(ids) == text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
