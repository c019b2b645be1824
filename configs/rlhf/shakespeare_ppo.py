"""PPO against a reward model, with a per-token KL penalty to the pretrained policy (issue 10's
demonstration: a char GPT on Tiny Shakespeare learns to say what VADER finds positive).

The chain (commands in experiments/rlhf.md):
  1. pretrainx train --config configs/gpt/shakespeare_char.py:smoke --workdir W/pretrain
  2. pretrainx pairs --workdir W/pretrain --out W/pairs.jsonl          (VADER labels the pairs)
  3. pretrainx train --config configs/rlhf/shakespeare_reward.py --workdir W/reward \\
       --config.init_from.workdir=W/pretrain --config.data.path=W/pairs.jsonl \\
       --config.data.tokenizer=W/pretrain
  4. pretrainx train --config configs/rlhf/shakespeare_ppo.py --workdir W/ppo \\
       --config.init_from.workdir=W/pretrain --config.init_from.also.reward.workdir=W/reward
Prompts are windows of the same text (the char vocabulary fit on it is the pretraining run's).

``:smoke`` trains from scratch and says so: without ``init_from`` the policy and its reference
start equal and the reward model is a fresh (zero-head) one, so a clean checkout can run it alone;
pass the two ``init_from`` workdirs above to run it as the chained stage (< 2 min on 2 CPU cores).
"""
from pretrainx.config import base, sections, text, variants


def get_config(arg: str = ""):
    flags = variants.parse(arg, __file__, "smoke")
    c = text.gpt({"smoke"}, objective="ppo")
    c.ppo = sections.ppo()
    c.init_from.mapping = (("params", "params/policy"), ("params", "frozen/reference"),
                           ("params", "params/value/backbone"))
    c.init_from.also.reward = base.init_from((("params", "frozen/reward"),))
    c.init_from.also.reward.agree = (("reward.pool", "ppo.reward_pool"),)   # scored as it was trained
    c = base.change(c, {"batch_size": 32,   # rollouts (prompts) per step
                        "eval.batch_size": 32, "eval.num_batches": 2,
                        "data.seq_len": 16,  # the prompt: a window of 16 characters
                        "optimizer.lr": 1e-4, "optimizer.end_lr": 1e-4, "optimizer.schedule": "constant",
                        "optimizer.warmup_steps": 5, "optimizer.weight_decay": 0.0, "train.log_every": 5,
                        "checkpoint.best_metric": "",   # the score is not a loss to minimise
                        "sample.prompt": "ROMEO:\nI ", "sample.max_new_tokens": 48})
    c = base.length(c, 100, every=50)
    if "smoke" in flags:              # ~30 s on 2 CPU cores; standalone, its score rises
        c = base.change(c, {           # (0.76 -> 1.36 against the fresh reward model, KL ~5 < 8)
            "train.steps": 60, "eval.every": 60, "checkpoint.every": 60,
            "optimizer.lr": 2e-3, "optimizer.end_lr": 2e-3,   # 1e-4 moves nothing visible in a smoke
            "batch_size": 16, "eval.batch_size": 16, "eval.num_batches": 1, "ppo.max_new_tokens": 24})
    return c
