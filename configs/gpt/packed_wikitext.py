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
from pretrainx.config import base, text, variants


def get_config(arg: str = ""):
    flags = variants.parse(arg, __file__, "smoke")
    c = base.change(text.gpt(flags), {   # model / optimiser / mesh as shakespeare_char
        "data.path": text.WIKITEXT,
        "data.doc_separator": "\n",   # one paragraph or heading per line
        "data.split": "documents",    # whole paragraphs validate
        "data.packing": "greedy",     # "greedy" | "concat" | "pad" (see packing.py)
        "data.tokenizer": "bpe:8000",  # trained now on the training paragraphs; or a saved dir
        "data.seq_len": 256, "model.max_len": 256,
        "model.vocab_size": 8000,     # the tokenizer's vocab_size, specials included
        "model.dropout": 0.1, "model.attention_dropout": 0.1})
    if "smoke" in flags:              # a smaller output layer keeps the smoke run short on CPU
        c = base.change(c, {"data.seq_len": 64, "model.max_len": 64, "data.tokenizer": "bpe:2048",
                            "model.vocab_size": 2048})
        c = base.length(c, 200, every=100)
    return c
