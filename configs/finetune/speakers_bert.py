"""Fine-tune a pretrained character BERT to tell which of the 10 most frequent speakers of Tiny
Shakespeare speaks a speech (``data.kind = "speeches"``: 1,229 training and 307 held-out
speeches, split by speech with a fixed seed; ``experiments/text_objectives.md``).

  # the parent: the smoke BERT at length 128, longer, on the play without the held-out speeches
  pretrainx train --config configs/bert/bert_base.py:smoke --workdir workdirs/bert_char128 \
      --config.data.kind=speeches_text --config.data.seq_len=128 --config.model.max_len=128 \
      --config.train.steps=3000 --config.optimizer.decay_steps=3000   # experiments/seed_studies.py
  pretrainx train --config configs/finetune/speakers_bert.py --workdir workdirs/speakers_ft \
      --config.init_from.workdir=workdirs/bert_char128 --config.data.tokenizer=workdirs/bert_char128
  pretrainx train --config configs/finetune/speakers_bert.py:smoke --workdir /tmp/speakers_smoke

The model block must be the parent's (here: the :smoke BERT of ``configs/bert/bert_base.py`` at
length 128). ``init_from`` loads the parent's encoder under ``params/backbone`` (its MLM head is
dropped, the pooler and the 10-way head start fresh). `:smoke` trains the same classifier from
scratch (no parent: it runs standalone) for 60 steps; it is also the from-scratch arm of the
experiment when run for as many steps as the fine-tune.
"""
import os

import ml_collections

from pretrainx.config import load as config_lib

_HERE = os.path.dirname(os.path.abspath(__file__))


def get_config(arg: str = ""):
    if arg not in ("", "smoke"):
        raise ValueError(f"unknown variant {arg!r} of speakers_bert (known: smoke)")
    c = config_lib.load(os.path.join(_HERE, "..", "bert", "bert_base.py") + ":smoke")
    c.objective = "classify"
    c.seed = 0
    c.batch_size = 32
    c.data = ml_collections.ConfigDict()
    c.data.kind = "speeches"
    c.data.path = os.path.normpath(os.path.join(_HERE, "..", "..", "..", "shared", "data",
                                                "tinyshakespeare", "input.txt"))
    c.data.tokenizer = "char"         # or the parent's workdir (its tokenizer.json)
    c.data.top_speakers = 10
    c.data.val_fraction = 0.2
    c.data.split_seed = 0
    c.data.seq_len = 128              # [CLS] + the first 127 characters of the speech
    c.model.max_len = 128
    c.model.dropout = 0.1
    c.classify = ml_collections.ConfigDict()
    c.classify.num_classes = 10
    c.classify.pooling = "default"    # BERT's pooled [CLS] | "mean" over the real tokens
    c.init_from.mapping = (("params", "params/backbone"),)
    c.optimizer.lr = 1e-3
    c.optimizer.warmup_steps = 30
    c.optimizer.decay_steps = 400
    c.optimizer.weight_decay = 0.01
    c.optimizer.layer_decay = 1.0     # < 1: layer-wise LR decay (head 1, top block d, ... embeddings d^(L+1))
    c.train.steps = 400               # ~10 epochs of 1,229 speeches
    c.train.log_every = 20
    c.eval.every = 100
    c.eval.batch_size = 307           # the whole held-out split in one batch
    c.eval.num_batches = 1
    c.checkpoint.every = 100
    c.checkpoint.best_metric = "val/accuracy"
    c.checkpoint.best_mode = "max"
    del c["mlm"]
    del c["sample"]
    if arg == "smoke":
        c.train.steps = 60
        c.optimizer.decay_steps = 60
        c.eval.every = 30
        c.checkpoint.every = 30
    return c
