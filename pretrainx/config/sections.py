"""The text objectives' own sections and data kinds, every default shown (pretrainx/objectives/).

A recipe assigns the section its objective reads, e.g. ``c.mlm = sections.mlm()``; the image
objectives' sections (diffusion, flow, shortcut, meanflow) are in ``images.py``.
"""
from __future__ import annotations

import ml_collections

from pretrainx.config import text


def _section(**fields) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(fields)


def mlm() -> ml_collections.ConfigDict:
    """Masked LM with RoBERTa's dynamic masking (objectives/mlm.py)."""
    return _section(
        rate=0.15,                    # BERT's masking rate (a schedule's final rate)
        rate_schedule="constant",     # "constant" | "linear" | "cosine" (rate_start -> rate)
        rate_start=0.15,
        eval_rate=0.15,               # validation masks at this rate whatever the schedule
        whole_word=False)             # Google's --do_whole_word_mask


def span() -> ml_collections.ConfigDict:
    """T5's span corruption (objectives/span_corruption.py)."""
    return _section(noise_density=0.15, mean_span_length=3.0)


def prefix() -> ml_collections.ConfigDict:
    """Prefix LM (objectives/prefix_lm.py): prefix lengths uniform in [min_length, max_fraction * T]."""
    return _section(min_length=1, max_fraction=1.0)


def mixture() -> ml_collections.ConfigDict:
    """Causal + masked LM on one decoder (objectives/clm_mlm.py)."""
    return _section(mlm_weight=0.5,   # each row's chance of being masked; 0: pure clm, 1: pure mlm
                    eval_mlm_weight=-1.0)   # validation rows' chance of masking; < 0: mlm_weight


def ul2(targets_length: int = 114, denoisers=(("r", "span", 3.0, 0.15, 0.4),
                                             ("x", "span", 32.0, 0.5, 0.4),
                                             ("s", "prefix", 0.0, 0.25, 0.2))) -> ml_collections.ConfigDict:
    """UL2's mixture of denoisers (objectives/ul2.py): (name, kind, mean span, density, weight);
    ``targets_length`` 114 is T5's at inputs 512."""
    return _section(targets_length=targets_length, denoisers=denoisers)


def dpo() -> ml_collections.ConfigDict:
    return _section(beta=0.1,         # strength of the implicit KL to the reference
                    ipo=False)        # True: IPO's squared loss instead of DPO's logistic one


def reward() -> ml_collections.ConfigDict:
    """A scalar reward head on a text trunk (objectives/reward.py)."""
    return _section(margin=0.0, centring=0.01,
                    pool="last")      # the score at the last token | "mean" of the per-token outputs


def classify(num_classes: int = 10) -> ml_collections.ConfigDict:
    return _section(num_classes=num_classes,
                    pooling="default")   # BERT's pooled [CLS] | "mean" over the real tokens


def ppo() -> ml_collections.ConfigDict:
    """PPO with a per-token KL penalty to the reference policy (objectives/ppo.py)."""
    p = ml_collections.ConfigDict()
    p.prompt_len = 16
    p.max_new_tokens = 48             # prompt + response fill the model's 64 positions
    p.temperature = 1.0               # the policy PPO optimises is softmax(logits / temperature)
    p.top_k = 0                       # 0: the whole vocabulary
    p.eos = ""                        # e.g. "\n": stop a response at the end of its line
    p.kl_coef = 0.05                  # β of the per-token KL penalty (start value if adaptive)
    p.kl_target = 0.0                 # > 0: Ziegler et al.'s adaptive β aiming at this KL
    p.kl_horizon = 10000
    p.kl_bound = 8.0                  # the mean KL (nats per response) the demonstration must stay under
    p.gamma = 1.0
    p.lam = 0.95
    p.clip = 0.2                      # ε of the clipped ratio
    p.value_clip = 0.2
    p.vf_coef = 0.1
    p.entropy_coef = 0.0
    p.epochs = 2                      # PPO epochs over each rollout batch ...
    p.minibatches = 2                 # ... of this many minibatches each
    p.whiten_rewards = False
    p.value_head = "separate"         # "separate" trunk | "shared" with the policy
    p.reward_pool = "last"            # the reward run's reward.pool: "last" | "mean"
    return p


def preference_data(path: str, *, format: str = "plain", tokenizer: str = "char",
                    seq_len: int = 64) -> ml_collections.ConfigDict:
    """Pairs (prompt, chosen, rejected) for reward models and DPO (data/preferences.py)."""
    d = ml_collections.ConfigDict()
    d.kind = "preferences"
    d.path = path
    d.format = format                 # "hh" dialogues | "plain" {prompt, chosen, rejected} | "auto"
    d.tokenizer = tokenizer           # chained: the pretraining run's workdir (its tokenizer.json)
    d.val_fraction = 0.2              # by seed: the pairs are shuffled with config.seed first
    d.max_pairs = 0                   # 0: all
    d.dev_fraction = 0.0              # > 0: a development split before the held-out pairs
    d.eval_split = "test"             # "dev": validate on the development split instead
    d.min_margin = 0.0                # > 0: only pairs whose rule scores differ by this much
    d.seq_len = seq_len
    return d


def speeches_data(seq_len: int = 128) -> ml_collections.ConfigDict:
    """Which of the most frequent speakers of Tiny Shakespeare speaks a speech (data/speeches.py)."""
    return _section(kind="speeches", path=text.SHAKESPEARE,
                    tokenizer="char",      # or the parent run's workdir (its tokenizer.json)
                    top_speakers=10, val_fraction=0.2,
                    split_seed=0,          # the speeches' split, apart from the run's seed
                    seq_len=seq_len)       # [CLS] + the first seq_len - 1 characters


def speeches_text_data(seq_len: int = 128) -> ml_collections.ConfigDict:
    """The play's text without the held-out speeches of the speaker task (data/speeches.py): what
    the classifier's parent pretrains on, so that no test speech is seen before it is classified."""
    d = text.text_data(text.SHAKESPEARE, "char", seq_len)
    d.kind = "speeches_text"
    d.top_speakers = 10               # the speaker task's split, as speeches_data's:
    d.val_fraction_speeches = 0.2     # its held-out share of the speeches (val_fraction: the text's)
    d.split_seed = 0
    return d
