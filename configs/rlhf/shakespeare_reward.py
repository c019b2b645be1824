"""The reward model of issue 10's demonstration: VADER-labelled pairs of the pretrained char
GPT's own samples (``pretrainx pairs``), a scalar head on the pretrained trunk.

  pretrainx train --config configs/rlhf/shakespeare_reward.py --workdir W/reward \\
      --config.init_from.workdir=W/pretrain --config.data.path=W/pairs.jsonl \\
      --config.data.tokenizer=W/pretrain
(the whole chain: configs/rlhf/shakespeare_ppo.py and experiments/rlhf.md; the model that meets
the held-out bar, "rm-v2" there, adds --config.reward.pool=mean, 34k pairs and 2,400 steps, chosen
with --config.data.dev_fraction=0.1 --config.data.eval_split=dev and scored once with
``pretrainx eval --checkpoint best --config.data.eval_split=test``). The tokenizer must be
the pretraining run's, so that the policy's token ids mean the same to the reward model.

``:smoke`` trains from scratch and says so: it reads the 300 pairs committed in
``experiments/data/shakespeare_vader_pairs.jsonl`` (made by the chain above) with a char
vocabulary fit on them, so a clean checkout can run it alone; add the three overrides above to
run it as the chained stage (< 1 min on 2 CPU cores).
"""
import os

import ml_collections

from pretrainx.config import load as config_lib

_HERE = os.path.dirname(__file__)
PAIRS = os.path.normpath(os.path.join(_HERE, "..", "..", "experiments", "data",
                                      "shakespeare_vader_pairs.jsonl"))


def preference_data(c, path=PAIRS):
    c.data = ml_collections.ConfigDict()
    c.data.kind = "preferences"
    c.data.path = path
    c.data.format = "plain"
    c.data.tokenizer = "char"         # chained: the pretraining run's workdir (its tokenizer.json)
    c.data.val_fraction = 0.2         # by seed: the pairs are shuffled with config.seed first
    c.data.max_pairs = 0
    c.data.dev_fraction = 0.0         # > 0: a development split before the held-out pairs
    c.data.eval_split = "test"        # "dev": validate on the development split instead
    c.data.min_margin = 0.0           # > 0: only pairs whose rule scores differ by this much
    c.data.seq_len = 64               # 16 prompt + 48 response characters
    return c


def get_config(arg: str = ""):
    if arg not in ("", "smoke"):
        raise ValueError(f"unknown variant {arg!r} of shakespeare_reward (known: smoke)")
    c = config_lib.load(os.path.join(_HERE, "..", "gpt", "shakespeare_char.py") + ":smoke")
    c.objective = "reward"
    preference_data(c)
    # pool: the score at the last token | "mean" of the per-token outputs
    c.reward = ml_collections.ConfigDict({"margin": 0.0, "centring": 0.01, "pool": "last"})
    c.batch_size = 32
    c.eval.batch_size = 64
    c.eval.num_batches = 16           # 16 x 64 >= the held-out pairs: each counted once
    c.optimizer.lr = 3e-4
    c.optimizer.end_lr = 3e-5
    c.optimizer.warmup_steps = 20
    c.optimizer.decay_steps = 600
    c.optimizer.weight_decay = 0.1
    c.train.steps = 600
    c.train.log_every = 20
    c.eval.every = 200
    c.checkpoint.every = 200
    c.checkpoint.best_metric = "val/loss"
    c.init_from.mapping = (("params", "params/backbone"),)
    if arg == "smoke":
        c.train.steps = 60
        c.optimizer.decay_steps = 60
        c.eval.every = 60
        c.checkpoint.every = 60
        c.eval.num_batches = 1
    return c
