"""DPO on the VADER-labelled pairs of issue 10's demonstration, against the frozen pretrained
policy (the offline alternative to reward model + PPO).

  pretrainx train --config configs/rlhf/shakespeare_dpo.py --workdir W/dpo \\
      --config.init_from.workdir=W/pretrain --config.data.path=W/pairs.jsonl \\
      --config.data.tokenizer=W/pretrain [--config.dpo.beta=0.1] [--config.dpo.ipo=True]
(the whole chain: configs/rlhf/shakespeare_ppo.py and experiments/rlhf.md).

``:smoke`` trains from scratch and says so (the committed 300 pairs, a char vocabulary fit on
them; the reference is then the initial random policy); add the overrides above to chain it.
"""
from pretrainx.config import base, sections, text, variants


def get_config(arg: str = ""):
    flags = variants.parse(arg, __file__, "smoke")
    c = text.gpt({"smoke"}, objective="dpo")
    c.data = sections.preference_data(text.checkout_path("experiments", "data",
                                                         "shakespeare_vader_pairs.jsonl"))
    c.dpo = sections.dpo()
    c.init_from.mapping = (("params", "params"), ("params", "frozen/reference"))
    c = base.change(c, {"batch_size": 32, "eval.batch_size": 64, "eval.num_batches": 16,
                        "optimizer.lr": 1e-4, "optimizer.end_lr": 1e-4, "optimizer.schedule": "constant",
                        "optimizer.warmup_steps": 10, "optimizer.weight_decay": 0.0,
                        "checkpoint.best_metric": "",
                        "sample.prompt": "ROMEO:\nI ", "sample.max_new_tokens": 48})
    c = base.length(c, 300, every=100)
    if "smoke" in flags:
        c = base.change(c, {"train.steps": 40, "eval.every": 40, "checkpoint.every": 40,
                            "eval.num_batches": 1})
    return c
