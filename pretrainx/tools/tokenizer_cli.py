"""``pretrainx tokenizer ...``: train a subword vocabulary on text files, or try one out.

A bad input (a missing, empty, binary or non-UTF-8 corpus, one that teaches nothing beyond the
special tokens) raises a user error that ``pretrainx`` prints as one line, exit 2; nothing is
saved then.

    pretrainx tokenizer train --corpus input.txt --kind bpe --vocab-size 8000 --out DIR
    pretrainx tokenizer encode --tokenizer DIR --text "To be, or not to be"
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def _parser() -> argparse.ArgumentParser:
    from pretrainx.data.subword import KINDS
    parser = argparse.ArgumentParser(prog="pretrainx tokenizer",
                                     description="train or try a subword tokenizer")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a vocabulary and save tokenizer.json")
    train.add_argument("--corpus", action="append", required=True,
                       help="a UTF-8 text file (.gz ok); repeat for several")
    train.add_argument("--kind", choices=KINDS, default="bpe")
    train.add_argument("--vocab-size", type=int, default=8000,
                       help="total tokens, special tokens included")
    train.add_argument("--out", required=True, help="directory to write tokenizer.json into")

    encode = commands.add_parser("encode", help="print the ids and pieces of a text")
    encode.add_argument("--tokenizer", required=True, help="a saved tokenizer dir or file")
    encode.add_argument("--text", required=True)
    return parser


def _train(args) -> int:
    from pretrainx.data import subword
    from pretrainx.errors import UserError
    if args.vocab_size < 1:
        raise UserError(f"--vocab-size must be >= 1, got {args.vocab_size}")
    missing = [c for c in args.corpus if not os.path.exists(c)]
    if missing:
        raise FileNotFoundError(f"corpus file not found: {missing[0]}")
    start = time.perf_counter()
    tok = subword.train_tokenizer(args.corpus, args.kind, args.vocab_size)
    trained = time.perf_counter() - start
    ids = subword.encode_corpus(tok, list(args.corpus))
    num_bytes = sum(len(line.encode("utf-8")) for line in subword.iter_lines(args.corpus))
    path = tok.save(args.out)
    print(f"trained {args.kind} in {trained:.1f}s: vocab size {tok.vocab_size}")
    print(f"corpus: {num_bytes} bytes -> {len(ids)} tokens = "
          f"{len(ids) / max(num_bytes, 1):.4f} tokens/byte")
    print(f"saved {path}")
    return 0


def _encode(args) -> int:
    from pretrainx.data import tokenizer as tokenizer_lib
    tok = tokenizer_lib.load(args.tokenizer)
    ids = tok.encode(args.text)
    print(f"{len(ids)} tokens: {ids}")
    hf = getattr(tok, "hf", None)
    if hf is not None:
        print("pieces:", [hf.id_to_token(i) for i in ids])
    print(f"decoded: {tok.decode(ids)!r}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["tokenizer"]:          # accept the argv of `pretrainx tokenizer ...` whole
        argv = argv[1:]
    args = _parser().parse_args(argv)
    return _train(args) if args.command == "train" else _encode(args)


if __name__ == "__main__":
    sys.exit(main())
