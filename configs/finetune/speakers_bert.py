"""Fine-tune a pretrained character BERT to tell which of the 10 most frequent speakers of Tiny
Shakespeare speaks a speech (``data.kind = "speeches"``: 1,229 training and 307 held-out
speeches, split by speech with a fixed seed; ``experiments/text_objectives.md``).

  # the parent: the smoke BERT at length 128, longer, on the play without the held-out speeches
  pretrainx train --config configs/finetune/speakers_bert.py:parent --workdir workdirs/bert_char128
  pretrainx train --config configs/finetune/speakers_bert.py --workdir workdirs/speakers_ft \
      --config.init_from.workdir=workdirs/bert_char128 --config.data.tokenizer=workdirs/bert_char128
  pretrainx train --config configs/finetune/speakers_bert.py:smoke --workdir /tmp/speakers_smoke

The model block must be the parent's (here: the :smoke BERT of ``configs/bert/bert_base.py`` at
length 128). ``init_from`` loads the parent's encoder under ``params/backbone`` (its MLM head is
dropped, the pooler and the 10-way head start fresh). `:smoke` trains the same classifier from
scratch (no parent: it runs standalone) for 60 steps; it is also the from-scratch arm of the
experiment when run for as many steps as the fine-tune.
"""
from pretrainx.config import base, sections, text, variants


def parent():
    """The masked-LM parent (experiments/seed_studies.py's speakers_parent): 3,000 steps."""
    c = text.bert({"smoke"})
    c.mlm = sections.mlm()
    c.data = sections.speeches_text_data(seq_len=128)
    c = base.change(c, {"model.max_len": 128, "checkpoint.every": 500, "train.log_every": 100})
    return base.length(c, 3000, every=500)


def get_config(arg: str = ""):
    flags = variants.parse(arg, __file__, "smoke", "parent")
    if "parent" in flags:
        return parent()
    c = text.bert({"smoke"}, objective="classify")   # the parent's model block
    c.data = sections.speeches_data(seq_len=128)
    c.classify = sections.classify(num_classes=10)
    c.init_from.mapping = (("params", "params/backbone"),)
    c = base.change(c, {"model.max_len": 128, "model.dropout": 0.1,
                        "optimizer.lr": 1e-3, "optimizer.warmup_steps": 30,
                        "eval.batch_size": 307,   # the whole held-out split in one batch
                        "eval.num_batches": 1, "train.log_every": 20,
                        "checkpoint.best_metric": "val/accuracy", "checkpoint.best_mode": "max"})
    c = base.length(c, 400, every=100)        # ~10 epochs of 1,229 speeches
    if "smoke" in flags:
        c = base.length(c, 60, every=30)
    return c
