"""A reward model on Anthropic's HH-RLHF preference pairs (the 2,312-pair harmless-base test file
in ../shared/data): byte tokens, dialogues cut from the left to the model's length, the pairs
split 80/20 by seed; ``val/accuracy`` is the held-out pairwise accuracy.

  pretrainx train --config configs/rlhf/hh_reward.py --workdir workdirs/hh_reward
  pretrainx train --config configs/rlhf/hh_reward.py:smoke --workdir /tmp/hh_reward_smoke

A small byte-level model trained on ~1,850 pairs from scratch: expect an accuracy not far above
chance (the issue asks for the figure, whatever it is). ``init_from`` a pretrained byte-level GPT
(mapping ``(("params", "params/backbone"),)``) to start from a language model instead.
"""
from pretrainx.config import base, sections, text, variants


def get_config(arg: str = ""):
    flags = variants.parse(arg, __file__, "smoke")
    c = text.gpt({"smoke"}, objective="reward")    # the smoke char GPT's trunk, on bytes
    c.data = sections.preference_data(text.shared_data("hh-rlhf", "harmless-base-test.jsonl.gz"),
                                      format="auto", tokenizer="byte",
                                      seq_len=128)   # the last 128 bytes of each dialogue
    c.reward = sections.reward()
    c.init_from.mapping = (("params", "params/backbone"),)
    c = base.change(c, {"model.vocab_size": 256, "model.max_len": 128, "model.dropout": 0.1,
                        "batch_size": 16, "eval.batch_size": 32,
                        "eval.num_batches": 15,  # 15 x 32 >= the 462 held-out pairs: each counted once
                        "optimizer.lr": 3e-4, "optimizer.end_lr": 3e-5, "optimizer.warmup_steps": 20,
                        "train.log_every": 10})
    c = base.length(c, 360, every=120)         # ~3 epochs of the 1,850 training pairs
    if "smoke" in flags:
        c = base.change(base.length(c, 30, every=30), {"data.seq_len": 64, "model.max_len": 64,
                                                       "eval.num_batches": 2})
    return c
