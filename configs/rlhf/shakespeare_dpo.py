"""DPO on the VADER-labelled pairs of issue 10's demonstration, against the frozen pretrained
policy (the offline alternative to reward model + PPO).

  pretrainx train --config configs/rlhf/shakespeare_dpo.py --workdir W/dpo \\
      --config.init_from.workdir=W/pretrain --config.data.path=W/pairs.jsonl \\
      --config.data.tokenizer=W/pretrain [--config.dpo.beta=0.1] [--config.dpo.ipo=True]
(the whole chain: configs/rlhf/shakespeare_ppo.py and experiments/rlhf.md).

``:smoke`` trains from scratch and says so (the committed 300 pairs, a char vocabulary fit on
them; the reference is then the initial random policy); add the overrides above to chain it.
"""
import os

import ml_collections

from pretrainx.config import load as config_lib

_HERE = os.path.dirname(__file__)


def get_config(arg: str = ""):
    if arg not in ("", "smoke"):
        raise ValueError(f"unknown variant {arg!r} of shakespeare_dpo (known: smoke)")
    reward = config_lib.load(os.path.join(_HERE, "shakespeare_reward.py"))
    c = config_lib.load(os.path.join(_HERE, "..", "gpt", "shakespeare_char.py") + ":smoke")
    c.objective = "dpo"
    c.data = reward.data
    c.dpo = ml_collections.ConfigDict({"beta": 0.1, "ipo": False})
    c.batch_size = 32
    c.eval.batch_size = 64
    c.eval.num_batches = 16
    c.optimizer.lr = 1e-4
    c.optimizer.end_lr = 1e-4
    c.optimizer.schedule = "constant"
    c.optimizer.warmup_steps = 10
    c.optimizer.decay_steps = 300
    c.optimizer.weight_decay = 0.0
    c.train.steps = 300
    c.train.log_every = 20
    c.eval.every = 100
    c.checkpoint.every = 100
    c.checkpoint.best_metric = ""
    c.sample.prompt = "ROMEO:\nI "
    c.sample.max_new_tokens = 48
    c.init_from.mapping = (("params", "params"), ("params", "frozen/reference"))
    if arg == "smoke":
        c.train.steps = 40
        c.eval.every = 40
        c.checkpoint.every = 40
        c.eval.num_batches = 1
    return c
