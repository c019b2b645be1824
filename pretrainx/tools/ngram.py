"""Count-based n-gram language model: the baseline every neural LM here should beat.

    P(w | c) = (count(c, w) + k) / (count(c) + k * V)        c = the previous n-1 tokens

The text is split as the training pipeline's default (``data/text.py``: nanoGPT's split by
character position), so the numbers compare with a GPT's on the same ``val_fraction``.

k = 0 is the maximum-likelihood estimate of the counting lecture; an event never seen in
training (or a context never seen) then has probability 0 and the loss is reported as ``inf``,
together with how many such events there were and the loss over the remaining ones
(``loss_seen``), so the number is never silently wrong. k > 0 is add-k (Laplace for k = 1).

Losses are mean cross-entropy in nats per predicted token, the unit the training loop reports
for GPT; ``bits_per_token`` = loss / ln 2 and ``bits_per_char`` = total bits / characters of the
text scored, comparable across tokenizers. The first n-1 tokens of a split are only context.

    pretrainx ngram --text input.txt --tokenizer char --n 2 --k 0.0 --val-fraction 0.1
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Sequence

import numpy as np

from pretrainx.data import readers
from pretrainx.data import text as text_lib
from pretrainx.data import tokenizer as tokenizer_lib
from pretrainx.errors import UserError


class NGramLM:
    """n-gram counts over token ids, kept as sorted integer keys (no Python dicts)."""

    def __init__(self, n: int = 2, k: float = 0.0, vocab_size: int | None = None):
        if n < 1:
            raise UserError(f"n must be >= 1, got {n}")
        if k < 0:
            raise UserError(f"k must be >= 0, got {k}")
        self.n, self.k, self.vocab_size = n, float(k), vocab_size

    def _keys(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(context key, token) of every position that has n-1 tokens of context."""
        ids = np.asarray(ids, np.int64)
        V, n = self.vocab_size, self.n
        if n > 1 and math.log(V) * (n - 1) > math.log(2 ** 62):
            raise UserError(f"contexts of {n - 1} tokens over a vocabulary of {V} do not fit "
                            f"an int64 key")
        m = len(ids) - (n - 1)
        context = np.zeros(max(m, 0), np.int64)
        for j in range(n - 1):                  # base-V number of the n-1 previous tokens
            context = context * V + ids[j:j + m]
        return context, ids[n - 1:]

    def fit(self, ids: Sequence[int]) -> "NGramLM":
        ids = np.asarray(ids, np.int64)
        if self.vocab_size is None:
            self.vocab_size = int(ids.max()) + 1
        context, token = self._keys(ids)
        self.context_keys, self.context_counts = np.unique(context, return_counts=True)
        self.event_keys, self.event_counts = np.unique(context * self.vocab_size + token,
                                                       return_counts=True)
        return self

    @staticmethod
    def _lookup(sorted_keys, counts, queries):
        at = np.clip(np.searchsorted(sorted_keys, queries), 0, max(len(sorted_keys) - 1, 0))
        found = (sorted_keys[at] == queries) if len(sorted_keys) else np.zeros(len(queries), bool)
        return np.where(found, counts[at] if len(counts) else 0, 0)

    def log_probs(self, ids: Sequence[int]) -> np.ndarray:
        """Natural-log probability of each token that has a full context (-inf when P = 0)."""
        context, token = self._keys(np.asarray(ids, np.int64))
        if len(token) and token.max() >= self.vocab_size:
            raise UserError(f"token id {int(token.max())} >= vocab_size {self.vocab_size}")
        event = context * self.vocab_size + token
        c_event = self._lookup(self.event_keys, self.event_counts, event)
        c_context = self._lookup(self.context_keys, self.context_counts, context)
        numerator = c_event + self.k
        denominator = c_context + self.k * self.vocab_size
        with np.errstate(divide="ignore", invalid="ignore"):
            # MLE with an unseen context is 0/0: no estimate at all, counted as P = 0 below
            p = np.where(denominator > 0, numerator / np.maximum(denominator, 1e-300), 0.0)
            return np.log(p)

    def evaluate(self, ids: Sequence[int], num_chars: int | None = None) -> dict:
        """Cross-entropy (nats/token), perplexity, bits/token and (given chars) bits/char."""
        lp = self.log_probs(ids)
        finite = np.isfinite(lp)
        unseen = int((~finite).sum())
        scored = len(lp)
        loss = float(-lp.mean()) if unseen == 0 and scored else math.inf
        loss_seen = float(-lp[finite].mean()) if finite.any() else math.nan
        out = {"loss": loss, "perplexity": math.exp(loss) if loss < 700 else math.inf,
               "bits_per_token": loss / math.log(2), "tokens": scored,
               "zero_prob_events": unseen, "loss_seen": loss_seen}
        if num_chars:
            # bits per token times tokens per character (the n-1 context-only tokens aside)
            out["bits_per_char"] = loss / math.log(2) * len(ids) / num_chars
        return out


def fit_and_evaluate(text: str, tokenizer_spec: str = "char", n: int = 2, k: float = 0.0,
                     val_fraction: float = 0.1) -> dict:
    """Split ``text``, tokenize, count on train, score both: ``{"train": {...}, "val": {...}}``."""
    train_text, val_text = text_lib.split_text(text, val_fraction)
    # a char vocabulary is fit on the whole text, as nanoGPT's prepare.py, so val chars have ids
    tok = tokenizer_lib.from_spec(tokenizer_spec, text)
    train_ids, val_ids = np.asarray(tok.encode(train_text)), np.asarray(tok.encode(val_text))
    model = NGramLM(n, k, tok.vocab_size).fit(train_ids)
    return {"train": model.evaluate(train_ids, len(train_text)),
            "val": model.evaluate(val_ids, len(val_text)),
            "vocab_size": tok.vocab_size, "n": n, "k": k}


def _fmt(split: str, m: dict) -> str:
    line = (f"{split}: loss {m['loss']:.4f} nats/token  ppl {m['perplexity']:.3f}  "
            f"bits/token {m['bits_per_token']:.4f}")
    if "bits_per_char" in m:
        line += f"  bits/char {m['bits_per_char']:.4f}"
    line += f"  ({m['tokens']} tokens)"
    if m["zero_prob_events"]:
        line += (f"\n  {m['zero_prob_events']} events have P=0 under MLE (k=0), so the loss is "
                 f"inf; over the other tokens it is {m['loss_seen']:.4f}. Use --k > 0 to smooth.")
    return line


def _read_text(path: str) -> str:
    """The UTF-8 text of ``path``; a missing, empty, binary, non-UTF-8 or blank file -> one line."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"text file not found: {path}")
    readers.check_data_file(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not text.strip():
        raise UserError(f"{path} holds only whitespace: nothing to count")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pretrainx ngram", description=__doc__.split("\n")[0])
    parser.add_argument("--text", required=True, help="a UTF-8 text file")
    parser.add_argument("--tokenizer", default="char", help="char | byte | saved tokenizer path")
    parser.add_argument("--n", type=int, default=2, help="order: 2 = bigram")
    parser.add_argument("--k", type=float, default=0.0, help="add-k smoothing; 0 = MLE")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    args = parser.parse_args(argv)
    if not 0 < args.val_fraction < 1:
        raise UserError(f"--val-fraction must be in (0, 1), got {args.val_fraction:g}")
    result = fit_and_evaluate(_read_text(args.text), args.tokenizer, args.n, args.k,
                              args.val_fraction)
    for split in ("train", "val"):      # fewer tokens than the order: no n-gram to count or score
        if result[split]["tokens"] < 1:
            raise UserError(f"the {split} part of {args.text} (--val-fraction "
                            f"{args.val_fraction:g}) is too short for a {args.n}-gram: use a "
                            f"longer text or another --val-fraction")
    print(f"{args.n}-gram, k={args.k:g}, tokenizer {args.tokenizer} "
          f"(vocab {result['vocab_size']}), val fraction {args.val_fraction:g}")
    print(_fmt("train", result["train"]))
    print(_fmt("val", result["val"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
