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
from pretrainx.config import base, sections, text, variants

PAIRS = text.checkout_path("experiments", "data", "shakespeare_vader_pairs.jsonl")


def get_config(arg: str = ""):
    flags = variants.parse(arg, __file__, "smoke")
    c = text.gpt({"smoke"}, objective="reward")    # the smoke char GPT is the trunk
    c.data = sections.preference_data(PAIRS)     # 16 prompt + 48 response characters
    c.reward = sections.reward()
    c.init_from.mapping = (("params", "params/backbone"),)
    c = base.change(c, {"batch_size": 32, "eval.batch_size": 64,
                        "eval.num_batches": 16,  # 16 x 64 >= the held-out pairs: each counted once
                        "optimizer.lr": 3e-4, "optimizer.end_lr": 3e-5, "optimizer.warmup_steps": 20})
    c = base.length(c, 600, every=200)
    if "smoke" in flags:
        c = base.change(base.length(c, 60, every=60), {"eval.num_batches": 1})
    return c
