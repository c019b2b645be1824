"""``dpo``: Direct Preference Optimisation (Rafailov et al. 2023), or IPO by option, on preference
pairs against a frozen reference policy.

The policy is a causal LM with the parameters of ``clm`` and the same sampler
(``text_lm.CausalPolicy``: ``pretrainx sample`` and the text sample evaluator work on a DPO run as
on a pretraining run); ``frozen["reference"]`` is a copy
that never trains. Load both from a pretrained run with
``init_from.mapping = (("params", "params"), ("params", "frozen/reference"))``; without
``init_from`` both start from the same key, so the reference is the initial policy.

Per pair, with log-probabilities summed over the response tokens (``*_response``):
    h = (log π(y⁺) − log π_ref(y⁺)) − (log π(y⁻) − log π_ref(y⁻))
    DPO: −log σ(β h)        IPO (``dpo.ipo``): (h − 1/(2β))²
Metrics: preference accuracy (h > 0), the implicit reward margin β h, and the implicit rewards
β (log π − log π_ref) of the chosen and the rejected responses.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from pretrainx.objectives import lm_utils, rl_math, settings
from pretrainx.objectives.base import DENOMINATOR, DataRequest, register
from pretrainx.objectives.text_lm import CausalPolicy, TextObjective, TextSampleEvaluator


@register("dpo")
class DPOObjective(TextObjective):
    batch_keys = lm_utils.PAIR_KEYS
    tokens_key = "chosen"

    def __init__(self, config, spec=None):
        super().__init__(config, spec)
        self.policy = CausalPolicy(self.model_config, self.tokenizer, config.sample)
        self.model = self.policy.model
        opts = config.dpo
        self.beta = float(opts.beta)
        self.ipo = bool(opts.ipo)

    @classmethod
    def check_config(cls, config):
        # beta <= 0 flips or removes the preference: the run would learn the rejected answers
        settings.number(config, "dpo.beta", 0.0, low_open=True)

    @classmethod
    def data_request(cls, config):
        return DataRequest(seq_len=int(config.data.seq_len), fields=None)

    def init(self, rng):
        return self.policy.init(lm_utils.policy_key(self.config), int(self.config.data.seq_len))

    def init_frozen(self, rng):
        return {"reference": self.init(rng)}

    def response_logprobs(self, params, batch, rng, *, train):
        """Summed log-probabilities of the chosen and the rejected responses (B each)."""
        tokens, _, response = lm_utils.both_sides(batch)
        logits = self.model.apply({"params": params}, tokens, train=train,
                                  rngs={"dropout": rng} if train else None)
        logp, _ = lm_utils.token_logprobs(logits, tokens)
        return jnp.split((logp * response).sum(-1), 2)

    def loss_fn(self, params, batch, rng, *, train, frozen, ctx=None):
        pol_c, pol_r = self.response_logprobs(params, batch, rng, train=train)
        ref_c, ref_r = jax.lax.stop_gradient(
            self.response_logprobs(frozen["reference"], batch, rng, train=False))
        per_pair, margin = rl_math.dpo_loss(pol_c, pol_r, ref_c, ref_r, beta=self.beta,
                                            ipo=self.ipo)
        weight = batch.get("pair_weight", jnp.ones_like(per_pair))
        total = jnp.maximum(weight.sum(), 1e-6)
        mean = lambda x: (weight * x).sum() / total
        return mean(per_pair), {
            "accuracy": mean((margin > 0).astype(jnp.float32)), "reward_margin": mean(margin),
            "chosen_reward": mean(self.beta * (pol_c - ref_c)),
            "rejected_reward": mean(self.beta * (pol_r - ref_r)), DENOMINATOR: weight.sum()}

    def flops_per_batch(self, batch):
        # policy forward + backward and the reference's forward over both sides
        return self.flops_per_token() * batch["chosen"].size * 2 * (6 + 2) / 6

    def sample_options(self):
        return self.policy.sample_options()

    def sample_command(self, ctx, options):
        return self.policy.sample_command(ctx.params, options)

    def evaluators(self):
        return [TextSampleEvaluator(self.policy)]
