"""A GPT on packed WikiText-2 paragraphs: several documents per row, kept apart by segment ids.

  pretrainx train --config configs/gpt/packed_wikitext.py --workdir workdirs/packed_wikitext
  pretrainx train --config configs/gpt/packed_wikitext.py:smoke --workdir /tmp/pw_smoke

The text pipeline (pretrainx/data/text.py) with ``doc_separator="\n"``: each non-blank line of the
word-level WikiText-2 release is one document (a paragraph or a heading), wrapped in <s> ... </s>
and packed greedily into rows of seq_len + 1 tokens (packing.py). Batches carry ``segment_ids``
and ``positions`` (the model masks attention to the same document and restarts positions) and
``weights`` (no loss on padding or across a document boundary). ``split="documents"``: the last
10 % of paragraphs validate, none is cut. Only the validation
split of WikiText-2 is in ../shared/data, so it is both train and val source here (split by
position). The BPE vocabulary ("bpe:8000") is trained on the training paragraphs when the data
set is built (about 1 s) and saved with the run.
"""
import os

from pretrainx.config import load as config_lib

_HERE = os.path.dirname(os.path.abspath(__file__))
_SHARED = os.path.join(_HERE, "..", "..", "..", "shared", "data")


def get_config(arg: str = ""):
    if arg not in ("", "smoke"):
        raise ValueError(f"unknown variant {arg!r} of packed_wikitext (known: smoke)")
    # model / optimiser / mesh layout as shakespeare_char (the same variant)
    c = config_lib.load(os.path.join(_HERE, "shakespeare_char.py") + (f":{arg}" if arg else ""))
    c.data.kind = "text"
    c.data.path = os.path.normpath(os.path.join(_SHARED, "wikitext-2", "valid.txt"))
    c.data.doc_separator = "\n"       # one paragraph or heading per line
    c.data.split = "documents"        # whole paragraphs validate
    c.data.packing = "greedy"         # "greedy" | "concat" | "pad" (see packing.py)
    c.data.tokenizer = "bpe:8000"     # trained now on the training paragraphs; or a saved dir
    c.data.max_bytes = 0
    c.data.val_fraction = 0.1
    c.data.seq_len = 256
    c.model.vocab_size = 8000         # the tokenizer's vocab_size, specials included
    c.model.max_len = 256
    c.model.dropout = 0.1
    c.model.attention_dropout = 0.1
    if arg == "smoke":
        c.data.seq_len = 64
        c.model.max_len = 64
        c.data.tokenizer = "bpe:2048"  # a smaller output layer keeps the smoke run short on CPU
        c.model.vocab_size = 2048
        c.train.steps = 200
        c.optimizer.decay_steps = 200
        c.eval.every = 100
        c.checkpoint.every = 100
    return c
