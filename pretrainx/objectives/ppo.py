"""``ppo``: RLHF with PPO against a frozen reward model, with a per-token KL penalty to a frozen
reference policy (Ziegler et al. 2019; Stiennon et al. 2020; Ouyang et al. 2022).

Every piece is a part of the runner contract (objectives/base.py); train.py knows none of it:

* ``prepare`` (on device, current params, not differentiated) is the rollout: batched KV-cache
  generation from the policy after each prompt (``ppo.temperature``, ``ppo.top_k``,
  ``ppo.max_new_tokens``, stop at ``ppo.eos``), then one full forward each of the policy, the
  value function and the frozen reference over prompt + response, the frozen reward model's score
  at the response's last token, per-token rewards r_t = −β·(log π − log π_ref) (+ score at the
  last token), GAE(γ, λ) advantages (whitened) and returns. Its rng is fold_in(key(seed, step),
  data.rng.PREPARE): a resumed run draws the same rollouts.
* ``update`` runs ``ppo.epochs`` × ``ppo.minibatches`` optimiser steps on the rollout batch (a
  fresh permutation each epoch), each on ``loss_fn``: the clipped policy loss + ``vf_coef`` ×
  the clipped value loss − ``entropy_coef`` × entropy.
* ``aux`` holds β (``kl_coef``): fixed, or Ziegler's adaptive controller when ``ppo.kl_target``
  is set (``update_aux``), so it is checkpointed with the state.

Parameters: ``params = {"policy": GPT, "value": GPTScalar}`` (``ppo.value_head="separate"``) or
``{"policy": GPT, "value_head": Dense}`` (``"shared"``: the value head reads the policy's final
features); ``frozen = {"reference": GPT, "reward": GPTScalar}``. All are boxed with the same
logical axis names, so one set of sharding rules places them. Load them with ``init_from``: the
pretrained run into ``params/policy``, ``frozen/reference`` (and ``params/value/backbone``), the
reward run (``init_from.also.reward``) into ``frozen/reward``. The reward model has the policy's
architecture (``config.model``).

The policy that PPO optimises is softmax(logits / temperature) over the whole vocabulary (top-k
only shapes the samples), and the log-probabilities of prepare and of the loss come from the
same full forward pass, so the first minibatch's ratios are exactly 1.

Logged each step: score (the reward model's), kl (Σ_t of the per-token KL, per response),
entropy, clip_fraction, value_loss, explained_variance, response_length, kl_coef; a few decoded
responses go to ``workdir/samples/`` at each eval.
"""
from __future__ import annotations


import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.data import rng as streams
from pretrainx.errors import UserError
from pretrainx.models import decoding
from pretrainx.models import gpt, transformer
from pretrainx.objectives import lm_utils, rl_math, sample_flags, settings
from pretrainx.objectives.base import DataRequest, Objective, SampleOption, register

ROLLOUT_KEYS = ("sequence", "mask", "old_logp", "old_values", "advantages", "returns")


@register("ppo")
class PPOObjective(Objective):
    batch_keys = ("tokens",)

    def __init__(self, config, spec=None):
        super().__init__(config, spec)
        self.model_config = transformer.TransformerConfig.from_config(config.model)
        self.policy = gpt.GPT(self.model_config)
        self.scalar = gpt.GPTScalar(self.model_config)
        self.value_head_module = nn.Dense(1, dtype=jnp.float32, kernel_init=transformer.zeros_init(
            ("embed", None)), bias_init=transformer.zeros_init((None,)))
        o = config.ppo
        self.prompt_len, self.max_new = int(o.prompt_len), int(o.max_new_tokens)
        self.temperature, self.top_k = float(o.temperature), int(o.top_k) or None
        self.shared = o.value_head == "shared"
        eos_ids = self.spec.require_tokenizer("ppo.eos").encode(o.eos) if o.eos else [None]
        if len(eos_ids) != 1:    # its first token alone would stop responses at the wrong place
            raise settings.SettingError(f"config.ppo.eos {o.eos!r} is {len(eos_ids)} tokens of "
                                        f"this tokenizer, not one: give a single token "
                                        f"(e.g. '\\n')")
        self.eos_id = None if eos_ids[0] is None else int(eos_ids[0])
        self.reward_pool = o.reward_pool   # as the reward run's reward.pool
        if self.prompt_len + self.max_new > self.model_config.max_len:
            raise UserError(f"ppo.prompt_len + ppo.max_new_tokens = {self.prompt_len + self.max_new}"
                            f" exceeds model.max_len {self.model_config.max_len}")

    @classmethod
    def check_config(cls, config):
        for name in ("prompt_len", "max_new_tokens", "epochs", "minibatches", "kl_horizon"):
            settings.integer(config, f"ppo.{name}", 1)
        settings.integer(config, "ppo.top_k", 0)
        for name in ("kl_coef", "kl_target", "vf_coef", "entropy_coef"):
            settings.number(config, f"ppo.{name}", 0.0)      # < 0 would reward the opposite
        for name in ("temperature", "clip", "value_clip", "kl_bound"):
            settings.number(config, f"ppo.{name}", 0.0, low_open=True)   # 0 clips every update
        for name in ("gamma", "lam"):
            settings.number(config, f"ppo.{name}", 0.0, 1.0)
        settings.choice(config, "ppo.value_head", ("separate", "shared"))
        settings.choice(config, "ppo.reward_pool", lm_utils.POOLS)
        minibatches = int(config.ppo.minibatches)
        if int(config.batch_size) % minibatches:
            raise settings.SettingError(f"config.batch_size {config.batch_size} does not split "
                                        f"into ppo.minibatches={minibatches} equal minibatches")

    # --- data and state -----------------------------------------------------------------------
    @classmethod
    def data_request(cls, config):
        return DataRequest(seq_len=int(config.ppo.prompt_len), fields=("tokens",))

    def init(self, rng):
        tokens = jnp.zeros((1, 8), jnp.int32)
        params = {"policy": self.policy.init({"params": lm_utils.policy_key(self.config)},
                                             tokens)["params"]}
        if self.shared:
            params["value_head"] = self.value_head_module.init(
                {"params": rng}, jnp.zeros((1, self.model_config.embed_dim)))["params"]
        else:
            params["value"] = self.scalar.init({"params": rng}, tokens)["params"]
        return params

    def init_frozen(self, rng):
        """The reference starts as the policy does. The reward model's head starts random, not
        at zero as a reward run's does: a run from scratch (``:smoke``) then still has a
        (random) reward to climb; ``init_from`` replaces both with trained ones."""
        tokens = jnp.zeros((1, 8), jnp.int32)
        reward = self.scalar.init({"params": rng}, tokens)["params"]
        kernel = reward["head"]["kernel"]
        reward["head"]["kernel"] = kernel.replace_boxed(
            jax.random.normal(jax.random.fold_in(rng, streams.REWARD_HEAD_INIT), kernel.value.shape)
            / jnp.sqrt(kernel.value.shape[0]))          # scores of order 1
        return {"reference": self.policy.init({"params": lm_utils.policy_key(self.config)},
                                              tokens)["params"], "reward": reward}

    def init_aux(self):
        return {"kl_coef": jnp.float32(self.config.ppo.kl_coef)}

    # --- forward passes -------------------------------------------------------------------------
    def forward(self, params, tokens_BxT, *, train=False, rng=None):
        """(policy logits B x T x V, values B x T: V(tokens <= t))."""
        rngs = {"dropout": rng} if train else None
        if not self.shared:
            logits = self.policy.apply({"params": params["policy"]}, tokens_BxT, train=train,
                                       rngs=rngs)
            return logits, self.scalar.apply({"params": params["value"]}, tokens_BxT,
                                             train=train, rngs=rngs)
        features = self.policy.apply({"params": params["policy"]}, tokens_BxT, train=train,
                                     rngs=rngs, features_only=True)
        p = params["policy"]
        if "lm_head" in p:      # an untied output layer
            logits = features @ p["lm_head"]["kernel"] + p["lm_head"].get("bias", 0.0)
        else:                   # tied: the token embedding read backwards, as GPT does
            logits = features @ p["wte"]["embedding"].T
        values = self.value_head_module.apply({"params": params["value_head"]}, features)[..., 0]
        return logits.astype(jnp.float32), values

    def response_view(self, logits_BxTxV, values_BxT, sequence_BxT):
        """(log π of each response token, entropy there, V of the state before it), B x N."""
        P = sequence_BxT.shape[1] - self.max_new
        logp, entropy = lm_utils.token_logprobs(logits_BxTxV, sequence_BxT, self.temperature)
        return logp[:, P:], entropy[:, P:], values_BxT[:, P - 1:-1]

    # --- the step -------------------------------------------------------------------------------
    def rollout(self, params, prompts_BxP, rng):
        """Sampled responses from the current policy: (prompt + response B x (P+N), mask B x N)."""
        out = decoding.decode(gpt.GPTDecoder(self.model_config), params["policy"], prompts_BxP,
                              jnp.ones(prompts_BxP.shape, bool), rng,
                              max_new_tokens=self.max_new, temperature=self.temperature,
                              top_k=self.top_k, vocab_size=self.vocab_size(), eos_id=self.eos_id)
        mask = (jnp.arange(self.max_new)[None] < out.lengths[:, None]).astype(jnp.float32)
        return jnp.concatenate([prompts_BxP, out.tokens], axis=1), mask

    def vocab_size(self):
        vocab = self.spec.vocab_size
        return min(int(vocab), self.model_config.vocab_size) if vocab else None

    def prepare(self, params, frozen, batch, rng, ctx):
        o = self.config.ppo
        prompts = batch["tokens"]
        sequence, mask = self.rollout(params, prompts, rng)
        logits, values = self.forward(params, sequence)
        old_logp, entropy, old_values = self.response_view(logits, values, sequence)
        ref_logits = self.policy.apply({"params": frozen["reference"]}, sequence)
        ref_logp, _, _ = self.response_view(ref_logits, values, sequence)
        full_mask = jnp.concatenate([jnp.ones(prompts.shape, jnp.float32), mask], axis=1)
        score = lm_utils.reward_scores(self.scalar, frozen["reward"], sequence, full_mask,
                                       pool=self.reward_pool)
        scaled = rl_math.whiten(score, jnp.ones_like(score)) if o.whiten_rewards else score
        kl = rl_math.per_token_kl(old_logp, ref_logp) * mask
        rewards = rl_math.token_rewards(scaled, kl, mask, ctx.aux["kl_coef"])
        advantages, returns = rl_math.gae(rewards, old_values, mask, gamma=float(o.gamma),
                                          lam=float(o.lam))
        advantages = rl_math.whiten(advantages, mask) * mask
        return jax.lax.stop_gradient({
            "sequence": sequence, "mask": mask, "old_logp": old_logp, "old_values": old_values,
            "advantages": advantages, "returns": returns, "score": score, "kl": kl.sum(-1),
            "rollout_entropy": rl_math.masked_mean(entropy, mask, -1),
            "response_length": mask.sum(-1),
            "explained_variance": jnp.broadcast_to(
                rl_math.explained_variance(old_values, returns, mask), score.shape)})

    def loss_fn(self, params, batch, rng, *, train, frozen, ctx=None):
        o = self.config.ppo
        logits, values = self.forward(params, batch["sequence"], train=train, rng=rng)
        logp, entropy, values = self.response_view(logits, values, batch["sequence"])
        mask = batch["mask"]
        policy_loss, clip_fraction = rl_math.clipped_policy_loss(
            logp, batch["old_logp"], batch["advantages"], mask, float(o.clip))
        value_loss = rl_math.clipped_value_loss(values, batch["old_values"], batch["returns"],
                                                mask, float(o.value_clip))
        entropy = rl_math.masked_mean(entropy, mask)
        loss = policy_loss + float(o.vf_coef) * value_loss - float(o.entropy_coef) * entropy
        metrics = {"policy_loss": policy_loss, "value_loss": value_loss,
                   "clip_fraction": clip_fraction, "entropy": entropy,
                   "approx_kl": rl_math.masked_mean(0.5 * (logp - batch["old_logp"]) ** 2, mask)}
        for key in ("score", "kl", "response_length", "explained_variance"):
            metrics[key] = batch[key].mean()
        if ctx is not None and ctx.aux:
            metrics["kl_coef"] = ctx.aux["kl_coef"]
        return loss, metrics

    def update(self, params, opt_state, batch, rng, ctx, updater):
        """``epochs`` × ``minibatches`` optimiser steps, one ``lax.scan`` (one compiled body)."""
        o = self.config.ppo
        epochs, num_mb = int(o.epochs), int(o.minibatches)
        rows = batch["sequence"].shape[0]
        size = rows // num_mb

        def one(carry, i):
            params, opt_state = carry
            order = jax.random.permutation(jax.random.fold_in(rng, i // num_mb), rows)
            pick = jax.lax.dynamic_slice(order, ((i % num_mb) * size,), (size,))
            minibatch = jax.tree.map(lambda x: x[pick], batch)
            loss, metrics, grads = updater.loss_and_grad(params, minibatch,
                                                         jax.random.fold_in(rng, streams.PPO_MINIBATCH_LOSS + i))
            params, opt_state = updater.apply(params, opt_state, grads)
            return (params, opt_state), {**metrics, "loss": loss, "grad_norm": updater.norm(grads)}

        (params, opt_state), history = jax.lax.scan(one, (params, opt_state),
                                                    jnp.arange(epochs * num_mb))
        return params, opt_state, jax.tree.map(lambda m: m.mean(0), history)

    def update_aux(self, aux, metrics, ctx):
        o = self.config.ppo
        if not o.kl_target:
            return aux
        return {**aux, "kl_coef": rl_math.adaptive_kl_coef(
            aux["kl_coef"], metrics["kl"], target=float(o.kl_target),
            horizon=float(o.kl_horizon), batch_size=int(self.config.batch_size))}

    # --- evaluation and sampling ---------------------------------------------------------------
    def evaluators(self):
        return [ResponseSamples(self)]

    def sample_options(self):
        s = self.config.sample
        return (sample_flags.prompt(s.prompt), sample_flags.max_new_tokens(self.max_new),
                sample_flags.temperature(self.temperature), sample_flags.top_k(self.top_k),
                sample_flags.seed(0),
                SampleOption("best_of", int, "draw N and print the one the reward model scores "
                             "highest", 1, minimum=1),
                SampleOption("policy", str, "sample the trained policy or the frozen reference",
                             "trained", choices=("trained", "reference")))

    def sample_command(self, ctx, options):
        """A continuation of the prompt from the trained policy (``--policy reference``: from the
        frozen reference); with ``--best-of N``, the one of N the reward model scores highest."""
        ids = self.tokenizer.encode(options["prompt"])
        which, n = options["policy"], int(options["best_of"])
        params = ctx.frozen["reference"] if which == "reference" else ctx.params["policy"]
        kw = dict(max_new_tokens=min(int(options["max_new_tokens"]),
                                     self.model_config.max_len - len(ids)),
                  temperature=float(options["temperature"]), top_k=options["top_k"],
                  seed=int(options["seed"]), eos_id=self.eos_id)
        best, score, scores = lm_utils.best_of_n(self.model_config, params, ctx.frozen["reward"],
                                                 ids, n=n, pool=self.reward_pool, **kw)
        return (f"{self.tokenizer.decode(best.tolist())}\n"
                f"[{which} policy, best of {n}: reward {score:.3f}; mean of the {n} "
                f"{float(np.mean(scores)):.3f}]")


class ResponseSamples:
    """Decoded responses to a few validation prompts, with their reward-model scores, written to
    ``workdir/samples/step_N.txt``: a look at what the policy does, not a metric."""
    name = "ppo_samples"

    def __init__(self, objective: PPOObjective, count: int = 4):
        self.objective, self.count = objective, count

    def __call__(self, ctx):
        obj = self.objective
        if ctx.val_data is None or obj.tokenizer is None:
            return []
        prompts = ctx.val_data.get_batch(0)["tokens"][:self.count]
        lines = []
        for i, prompt in enumerate(prompts):
            best, score, _ = lm_utils.best_of_n(
                obj.model_config, ctx.params["policy"], ctx.frozen["reward"], prompt.tolist(), n=1,
                max_new_tokens=obj.max_new, temperature=obj.temperature, top_k=obj.top_k,
                seed=ctx.step * streams.PPO_SAMPLE_SEEDS_PER_STEP + i, eos_id=obj.eos_id, pool=obj.reward_pool)
            lines.append(f"[reward {score:+.3f}] {obj.tokenizer.decode(prompt.tolist())!r} -> "
                         f"{obj.tokenizer.decode(best[len(prompt):].tolist())!r}")
        if ctx.samples_dir and jax.process_index() == 0:
            with open(ctx.sample_path(".txt"), "w") as f:
                f.write("\n".join(lines) + "\n")
        return []
