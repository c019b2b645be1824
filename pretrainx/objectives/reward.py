"""``reward``: a reward model fit to preference pairs with the Bradley–Terry loss.

A GPT trunk with a scalar head (``models/gpt.GPTScalar``) scores prompt + response at the
response's last token; the loss is −log σ(r(x, y⁺) − r(x, y⁻) − margin) averaged over pairs, plus
an optional centring term c·(r⁺ + r⁻)² (``reward.margin``, ``reward.centring``); with
``reward.pool="mean"`` the score is the mean of the head's per-token outputs instead. Metrics: loss,
pairwise accuracy (r⁺ > r⁻), reward margin (r⁺ − r⁻) and mean reward.

Data: the ``"preferences"`` kind (data/preferences.py): HH-RLHF dialogues or plain
{prompt, chosen, rejected} JSONL. Start from a pretrained causal LM with
``init_from.mapping = (("params", "params/backbone"),)``: ``adapt_init_from`` drops an untied LM
head, which has no place under the scalar head. Validation pools over held-out pairs by their
``pair_weight``, so ``val/accuracy`` is the held-out accuracy over exactly those pairs.
"""
from __future__ import annotations

import jax.numpy as jnp

from pretrainx.models import gpt
from pretrainx.objectives import lm_utils, rl_math, settings
from pretrainx.objectives.base import DENOMINATOR, DataRequest, register
from pretrainx.objectives.text_lm import TextObjective


@register("reward")
class RewardObjective(TextObjective):
    batch_keys = lm_utils.PAIR_KEYS
    tokens_key = "chosen"

    def __init__(self, config, spec=None):
        super().__init__(config, spec)
        self.model = gpt.GPTScalar(self.model_config)
        opts = config.reward
        self.margin = float(opts.margin)
        self.centring = float(opts.centring)
        self.pool = str(opts.pool)       # "last" token | "mean" over real tokens

    @classmethod
    def check_config(cls, config):
        settings.number(config, "reward.margin", 0.0)
        settings.number(config, "reward.centring", 0.0)
        settings.choice(config, "reward.pool", lm_utils.POOLS)

    @classmethod
    def data_request(cls, config):
        return DataRequest(seq_len=int(config.data.seq_len), fields=None)

    def init(self, rng):
        tokens = jnp.zeros((1, int(self.config.data.seq_len)), jnp.int32)
        return self.model.init({"params": rng}, tokens)["params"]

    def adapt_init_from(self, source, target):
        """A causal LM's untied output head has no place under the scalar head: drop it."""
        if "params" in source and "lm_head" in source["params"]:
            source = {**source, "params": {k: v for k, v in source["params"].items()
                                           if k != "lm_head"}}
        return source

    def loss_fn(self, params, batch, rng, *, train, frozen, ctx=None):
        tokens, mask, _ = lm_utils.both_sides(batch)
        scores = lm_utils.reward_scores(self.model, params, tokens, mask, train=train, rng=rng,
                                        pool=self.pool)
        r_chosen, r_rejected = jnp.split(scores, 2)
        weight = batch.get("pair_weight", jnp.ones_like(r_chosen))
        total = jnp.maximum(weight.sum(), 1e-6)
        mean = lambda x: (weight * x).sum() / total
        loss = mean(rl_math.bradley_terry_loss(r_chosen, r_rejected, margin=self.margin,
                                               centring=self.centring))
        return loss, {"accuracy": mean((r_chosen > r_rejected).astype(jnp.float32)),
                      "reward_margin": mean(r_chosen - r_rejected),
                      "reward_mean": mean(0.5 * (r_chosen + r_rejected)), DENOMINATOR: weight.sum()}
