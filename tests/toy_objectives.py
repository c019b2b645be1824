"""Small objectives that exercise each part of the runner contract (objectives/base.py) with real
models and real math; importing this module registers them. Shared by several test files, and
imported by the subprocesses of test_multiprocess.py.

  toy_masked_lm   host-side masking drawn for the global batch (BatchContext), a step-aware
                  masking rate, raw "tokens" rows (DataRequest), a bidirectional GPT, the loss
                  over masked tokens only with their count as denominator
  toy_span_drop   asks the data for rows longer than the model's and drops a span of each
  toy_sampler     ``prepare`` samples actions from the current parameters inside the step; the
                  loss (REINFORCE) depends on those samples; ``aux`` keeps a running reward baseline
  toy_epochs      ``update`` overridden: 2 epochs x 2 minibatches of optimiser steps per batch
  toy_value       a value head on a GPT trunk (features_only) and a frozen reference trunk; its
                  ``adapt_init_from`` drops the language-model head of a loaded causal LM
"""
from __future__ import annotations

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.config import load as config_lib

from pretrainx.models import gpt, transformer
from pretrainx.objectives.base import DENOMINATOR, DataRequest, Objective, register
from pretrainx.objectives.clm import CausalLM

MASK_ID = 256          # one past the byte vocabulary: toy_masked_lm's models have 257 rows


@register("toy_masked_lm")
class ToyMaskedLM(CausalLM):
    """BERT-style masking of byte rows; the rate grows with the step (0.15 -> 0.3)."""

    @classmethod
    def data_request(cls, config):
        return DataRequest(seq_len=int(config.data.seq_len), fields=("tokens",))

    def rate(self, ctx):
        return 0.15 + 0.15 * ctx.step / max(ctx.total_steps, 1)

    def transform(self, batch, rng, *, ctx):
        tokens = batch["tokens"]
        draws = rng.random((ctx.global_batch_size, tokens.shape[1]))   # for the global batch
        masked = ctx.local(draws) < self.rate(ctx)
        return {"inputs": np.where(masked, MASK_ID, tokens).astype(np.int32),
                "targets": tokens, "weights": masked.astype(np.float32)}

    def evaluators(self):
        return []           # no text samples: a bidirectional model does not decode

    def loss_fn(self, params, batch, rng, *, train, frozen, ctx=None):
        loss, metrics = super().loss_fn(params, batch, rng, train=train, frozen=frozen, ctx=ctx)
        # where the masks are, as a number: any process-dependent masking changes it
        B, T = batch["weights"].shape
        where = jnp.arange(B * T, dtype=jnp.float32).reshape(B, T)
        metrics["mask_position"] = (batch["weights"] * where).sum() / metrics[DENOMINATOR]
        return loss, metrics


@register("toy_span_drop")
class ToySpanDrop(CausalLM):
    """Reads SPAN more raw tokens than the model's length and drops a random span of them from
    each row (as span corruption reads 568 raw tokens to make 512 inputs)."""
    SPAN = 8

    @classmethod
    def data_request(cls, config):
        return DataRequest(seq_len=int(config.data.seq_len) + 1 + cls.SPAN, fields=("tokens",))

    def transform(self, batch, rng, *, ctx):
        tokens = batch["tokens"]
        starts = ctx.local(rng.integers(0, tokens.shape[1] - self.SPAN, ctx.global_batch_size))
        keep = np.ones(tokens.shape, bool)
        keep[np.arange(len(tokens))[:, None], starts[:, None] + np.arange(self.SPAN)] = False
        rows = tokens[keep].reshape(len(tokens), -1)
        return {"inputs": rows[:, :-1], "targets": rows[:, 1:]}


class Policy(nn.Module):
    """Logits over ``num_actions`` for each of ``num_contexts`` contexts."""
    num_contexts: int = 8
    num_actions: int = 8

    @nn.compact
    def __call__(self, context_B):
        table = self.param("logits", nn.with_logical_partitioning(  # split 4 ways under fsdp=4
            nn.initializers.normal(0.5), ("embed", "vocab")), (self.num_contexts, self.num_actions))
        return table[context_B]


@register("toy_sampler")
class ToySampler(Objective):
    """REINFORCE on samples drawn inside the step: reward 1 when the action equals the context's
    target, baseline = a running mean of the reward kept in ``aux``."""
    batch_keys = ("context", "target")
    num_samples = 4

    def __init__(self, config, spec=None):
        super().__init__(config, spec)
        self.model = Policy()

    @classmethod
    def data_request(cls, config):
        return DataRequest(seq_len=None)

    def init(self, rng):
        return self.model.init({"params": rng}, jnp.zeros((1,), jnp.int32))["params"]

    def init_aux(self):
        return {"baseline": jnp.float32(0.0), "updates": jnp.int32(0)}

    def prepare(self, params, frozen, batch, rng, ctx):
        logits_BxA = self.model.apply({"params": params}, batch["context"])
        samples = jax.random.categorical(rng, logits_BxA, axis=-1,
                                         shape=(self.num_samples, logits_BxA.shape[0])).T
        return {**batch, "samples": samples}

    def loss_fn(self, params, batch, rng, *, train, frozen, ctx=None):
        log_probs = jax.nn.log_softmax(self.model.apply({"params": params}, batch["context"]))
        logp_BxK = jnp.take_along_axis(log_probs, batch["samples"], axis=-1)
        reward_BxK = (batch["samples"] == batch["target"][:, None]).astype(jnp.float32)
        baseline = ctx.aux["baseline"] if ctx is not None else 0.0
        loss = -jnp.mean((reward_BxK - baseline) * logp_BxK)
        return loss, {"reward": reward_BxK.mean()}

    def update_aux(self, aux, metrics, ctx):
        return {"baseline": 0.9 * aux["baseline"] + 0.1 * metrics["reward"],
                "updates": aux["updates"] + 1}

    def flops_per_batch(self, batch):
        return 1e9          # a round number, for the MFU test


class Linear(nn.Module):
    @nn.compact
    def __call__(self, x_BxD):
        w = self.param("w", nn.with_logical_partitioning(nn.initializers.normal(1.0),
                                                         ("embed", None)), (x_BxD.shape[-1], 1))
        return (x_BxD @ w)[:, 0]


@register("toy_epochs")
class ToyEpochs(Objective):
    """Linear regression whose update runs EPOCHS x MINIBATCHES optimiser steps on each batch,
    minibatches drawn by a fresh permutation each epoch (PPO's loop)."""
    batch_keys = ("x", "y")
    EPOCHS, MINIBATCHES = 2, 2

    @classmethod
    def data_request(cls, config):
        return DataRequest(seq_len=None)

    def init(self, rng):
        return Linear().init({"params": rng}, jnp.zeros((1, 4)))["params"]

    def loss_fn(self, params, batch, rng, *, train, frozen, ctx=None):
        err = Linear().apply({"params": params}, batch["x"]) - batch["y"]
        return jnp.mean(err ** 2), {}

    def minibatches(self, rng, batch_size):
        """Row indices of every (epoch, minibatch), in order."""
        size = batch_size // self.MINIBATCHES
        for epoch in range(self.EPOCHS):
            order = jax.random.permutation(jax.random.fold_in(rng, epoch), batch_size)
            for m in range(self.MINIBATCHES):
                yield order[m * size:(m + 1) * size]

    def update(self, params, opt_state, batch, rng, ctx, updater):
        for rows in self.minibatches(rng, batch["x"].shape[0]):
            minibatch = jax.tree.map(lambda x: x[rows], batch)
            loss, metrics, grads = updater.loss_and_grad(params, minibatch, rng, grad_accum=1)
            params, opt_state = updater.apply(params, opt_state, grads)
        return params, opt_state, {**metrics, "loss": loss}


class ValueModel(nn.Module):
    """A scalar per sequence from the last position's features of a GPT trunk."""
    config: transformer.TransformerConfig

    @nn.compact
    def __call__(self, tokens_BxT, train: bool = False):
        features_BxTxE = gpt.GPT(self.config, name="backbone")(tokens_BxT, train=train,
                                                               features_only=True)
        head = nn.Dense(1, kernel_init=nn.with_logical_partitioning(
            nn.initializers.zeros_init(), ("embed", None)), name="value_head")
        return head(features_BxTxE[:, -1])[:, 0], features_BxTxE


@register("toy_value")
class ToyValue(Objective):
    """Regress the share of spaces in a window from a GPT trunk, kept near a frozen reference."""
    batch_keys = ("inputs",)

    def __init__(self, config, spec=None):
        super().__init__(config, spec)
        self.model_config = transformer.TransformerConfig.from_config(config.model)
        self.model = ValueModel(self.model_config)
        self.trunk = gpt.GPT(self.model_config)

    def init(self, rng):
        return self.model.init({"params": rng}, jnp.zeros((1, 8), jnp.int32))["params"]

    def init_frozen(self, rng):
        return {"reference": self.trunk.init({"params": rng}, jnp.zeros((1, 8), jnp.int32),
                                             features_only=True)["params"]}

    def adapt_init_from(self, source, target):
        """A causal LM's output head has no place under a value head: drop it."""
        params = dict(source["params"])
        params.pop("lm_head", None)
        return {**source, "params": params}

    def loss_fn(self, params, batch, rng, *, train, frozen, ctx=None):
        value, features = self.model.apply({"params": params}, batch["inputs"])
        reference = self.trunk.apply({"params": frozen["reference"]}, batch["inputs"],
                                     features_only=True)
        target = (batch["inputs"] == ord(" ")).mean(axis=-1)
        mse = jnp.mean(jnp.square(value - target))
        drift = jnp.mean((features - reference) ** 2)
        return mse + 0.01 * drift, {"mse": mse, "drift": drift}


ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))


def write_arrays(directory, name: str, rows: int = 256, seed: int = 0) -> str:
    """A .npz for the "numpy" data kind: toy_sampler's contexts/targets or toy_epochs' x/y."""
    rng = np.random.default_rng(seed)
    if name == "toy_sampler":
        context = rng.integers(0, 8, rows).astype(np.int32)
        arrays = {"context": context, "target": ((3 * context + 1) % 8).astype(np.int32)}
    else:
        x = rng.normal(size=(rows, 4)).astype(np.float32)
        arrays = {"x": x, "y": (x @ np.array([1.0, -2.0, 0.5, 3.0], np.float32) + 0.1).astype(np.float32)}
    path = os.path.join(str(directory), f"{name}.npz")
    np.savez(path, **arrays)
    return path


def config(objective: str, **updates):
    """shakespeare_char's smoke recipe, tiny and quiet, for ``objective``."""
    c = config_lib.load(os.path.join(ROOT, "configs/gpt/shakespeare_char.py:smoke"))
    base = {"objective": objective, "data.path": "stdlib", "data.max_bytes": 100_000,
            "data.tokenizer": "byte", "model.vocab_size": 256, "model.num_layers": 1,
            "model.num_heads": 2, "model.embed_dim": 16, "model.max_len": 16, "data.seq_len": 16,
            "batch_size": 16, "eval.batch_size": 16, "eval.every": 0, "eval.num_batches": 2,
            "train.steps": 4, "train.log_every": 1, "train.progress": False,
            "checkpoint.every": 100, "optimizer.warmup_steps": 1, "optimizer.decay_steps": 4,
            "mesh.data": 1}
    base.update(updates)
    return config_lib.override(c, base)
