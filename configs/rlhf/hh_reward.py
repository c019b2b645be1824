"""A reward model on Anthropic's HH-RLHF preference pairs (the 2,312-pair harmless-base test file
in ../shared/data): byte tokens, dialogues cut from the left to the model's length, the pairs
split 80/20 by seed; ``val/accuracy`` is the held-out pairwise accuracy.

  pretrainx train --config configs/rlhf/hh_reward.py --workdir workdirs/hh_reward
  pretrainx train --config configs/rlhf/hh_reward.py:smoke --workdir /tmp/hh_reward_smoke

A small byte-level model trained on ~1,850 pairs from scratch: expect an accuracy not far above
chance (the issue asks for the figure, whatever it is). ``init_from`` a pretrained byte-level GPT
(mapping ``(("params", "params/backbone"),)``) to start from a language model instead.
"""
import os

import ml_collections

from pretrainx.config import load as config_lib

_HERE = os.path.dirname(__file__)
_SHARED = os.path.join(_HERE, "..", "..", "..", "shared", "data")


def get_config(arg: str = ""):
    if arg not in ("", "smoke"):
        raise ValueError(f"unknown variant {arg!r} of hh_reward (known: smoke)")
    c = config_lib.load(os.path.join(_HERE, "..", "gpt", "shakespeare_char.py") + ":smoke")
    c.objective = "reward"
    c.data = ml_collections.ConfigDict()
    c.data.kind = "preferences"
    c.data.path = os.path.normpath(os.path.join(_SHARED, "hh-rlhf", "harmless-base-test.jsonl.gz"))
    c.data.format = "auto"            # "hh" dialogues | "plain" {prompt, chosen, rejected}
    c.data.tokenizer = "byte"
    c.data.val_fraction = 0.2         # by seed: the pairs are shuffled with config.seed first
    c.data.max_pairs = 0
    c.data.seq_len = 128              # the last 128 bytes of each dialogue (CPU-sized)
    c.model.vocab_size = 256
    c.model.max_len = 128
    c.model.num_layers = 2
    c.model.num_heads = 4
    c.model.embed_dim = 128
    c.model.dropout = 0.1
    c.model.attention_dropout = 0.0
    c.reward = ml_collections.ConfigDict({"margin": 0.0, "centring": 0.01})
    c.batch_size = 16
    c.eval.batch_size = 32
    c.eval.num_batches = 15           # 15 x 32 >= the 462 held-out pairs: each counted once
    c.optimizer.lr = 3e-4
    c.optimizer.end_lr = 3e-5
    c.optimizer.warmup_steps = 20
    c.optimizer.decay_steps = 360
    c.train.steps = 360               # ~3 epochs of the 1,850 training pairs
    c.train.log_every = 10
    c.eval.every = 120
    c.checkpoint.every = 120
    c.checkpoint.best_metric = "val/loss"
    c.init_from.mapping = (("params", "params/backbone"),)
    if arg == "smoke":
        c.data.seq_len = 64
        c.model.max_len = 64
        c.train.steps = 30
        c.optimizer.decay_steps = 30
        c.eval.every = 30
        c.checkpoint.every = 30
        c.eval.num_batches = 2
    return c
