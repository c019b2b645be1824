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
import os

import ml_collections

from pretrainx.config import load as config_lib

_HERE = os.path.dirname(__file__)


def get_config(arg: str = ""):
    if arg not in ("", "smoke"):
        raise ValueError(f"unknown variant {arg!r} of shakespeare_ppo (known: smoke)")
    c = config_lib.load(os.path.join(_HERE, "..", "gpt", "shakespeare_char.py") + ":smoke")
    c.objective = "ppo"
    c.batch_size = 32                 # rollouts (prompts) per step
    c.eval.batch_size = 32
    c.eval.num_batches = 2
    c.data.seq_len = 16               # the prompt: a window of 16 characters

    c.ppo = ml_collections.ConfigDict()
    c.ppo.prompt_len = 16
    c.ppo.max_new_tokens = 48         # prompt + response fill the model's 64 positions
    c.ppo.temperature = 1.0           # the policy PPO optimises is softmax(logits / temperature)
    c.ppo.top_k = 0                   # 0: the whole vocabulary
    c.ppo.eos = ""                    # e.g. "\n": stop a response at the end of its line
    c.ppo.kl_coef = 0.05              # β of the per-token KL penalty (start value if adaptive)
    c.ppo.kl_target = 0.0             # > 0: Ziegler et al.'s adaptive β aiming at this KL
    c.ppo.kl_horizon = 10000
    c.ppo.kl_bound = 8.0              # the mean KL (nats per response) the demonstration must stay under
    c.ppo.gamma = 1.0
    c.ppo.lam = 0.95
    c.ppo.clip = 0.2                  # ε of the clipped ratio
    c.ppo.value_clip = 0.2
    c.ppo.vf_coef = 0.1
    c.ppo.entropy_coef = 0.0
    c.ppo.epochs = 2                  # PPO epochs over each rollout batch ...
    c.ppo.minibatches = 2             # ... of this many minibatches each
    c.ppo.whiten_rewards = False
    c.ppo.value_head = "separate"     # "separate" trunk | "shared" with the policy
    c.ppo.reward_pool = "last"        # the reward run's reward.pool: "last" | "mean"

    c.optimizer.lr = 1e-4
    c.optimizer.end_lr = 1e-4
    c.optimizer.schedule = "constant"
    c.optimizer.warmup_steps = 5
    c.optimizer.decay_steps = 100
    c.optimizer.weight_decay = 0.0
    c.train.steps = 100
    c.train.log_every = 5
    c.eval.every = 50
    c.checkpoint.every = 50
    c.checkpoint.best_metric = ""     # the score is not a loss to minimise; keep the last
    c.sample.prompt = "ROMEO:\nI "
    c.sample.max_new_tokens = 48

    c.init_from.mapping = (("params", "params/policy"), ("params", "frozen/reference"),
                           ("params", "params/value/backbone"))
    c.init_from.also = ml_collections.ConfigDict()
    c.init_from.also.reward = ml_collections.ConfigDict(
        {"workdir": "", "step": "latest", "mapping": (("params", "frozen/reward"),)})
    if arg == "smoke":                # ~30 s on 2 CPU cores; standalone, its score rises
        c.train.steps = 60            # (0.76 -> 1.36 against the fresh reward model, KL ~5 < 8)
        c.optimizer.lr = 2e-3         # 1e-4 (the recipe's) moves nothing visible in a smoke
        c.optimizer.end_lr = 2e-3
        c.eval.every = 60
        c.checkpoint.every = 60
        c.batch_size = 16
        c.eval.batch_size = 16
        c.eval.num_batches = 1
        c.ppo.max_new_tokens = 24
    return c
