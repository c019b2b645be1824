"""A new objective in one file of its own, outside the package, with its config: a byte bigram
model (a table of next-byte logits) and ``pretrainx sample`` flags of its own.

  pretrainx train  --config tests/external_objective.py --workdir W
  pretrainx sample --workdir W --start e --length 12

``get_config`` names the objective as ``"<this file>:toy_bigram"``: the registry imports this
file before it looks the name up (pretrainx/objectives/registry.py), so nothing in the package
changes. Nothing imports this module by name (tests/test_external_objective.py runs it only
through the CLI).
"""
from __future__ import annotations

import os

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from pretrainx.config import load as config_lib
from pretrainx.objectives import losses
from pretrainx.objectives.base import DENOMINATOR, Objective, SampleOption, register

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
VOCAB = 256                # bytes


class NextByteTable(nn.Module):
    """Logits of the next byte given this one: one row per byte."""

    @nn.compact
    def __call__(self, tokens_BxT):
        table = self.param("logits", nn.with_logical_partitioning(
            nn.initializers.zeros_init(), ("vocab", "embed")), (VOCAB, VOCAB))
        return table[tokens_BxT]


@register("toy_bigram")
class Bigram(Objective):
    batch_keys = ("inputs", "targets")
    tokens_key = "inputs"

    def __init__(self, config, spec=None):
        super().__init__(config, spec)
        self.model = NextByteTable()

    def init(self, rng):
        return self.model.init({"params": rng}, jnp.zeros((1, 1), jnp.int32))["params"]

    def loss_fn(self, params, batch, rng, *, train, frozen, ctx=None):
        logits = self.model.apply({"params": params}, batch["inputs"])
        loss, nll, acc, count = losses.cross_entropy(logits, batch["targets"])
        return loss, {"nll": nll, "accuracy": acc, DENOMINATOR: count}

    def sample_options(self):
        return (SampleOption("start", str, "the first character", "d"),
                SampleOption("length", int, "characters to write after it", 16, minimum=1))

    def sample_command(self, ctx, options):
        """The greedy chain of most likely next bytes from ``--start``."""
        table = np.asarray(nn.unbox(ctx.params)["logits"])
        ids = list(self.tokenizer.encode(options["start"])[-1:])
        for _ in range(options["length"]):
            ids.append(int(table[ids[-1]].argmax()))
        return self.tokenizer.decode(ids)


def get_config():
    c = config_lib.load(os.path.join(ROOT, "configs/gpt/shakespeare_char.py:smoke"))
    return config_lib.override(c, {
        "objective": f"{os.path.abspath(__file__)}:toy_bigram",
        "data.path": "stdlib", "data.max_bytes": 100_000, "data.tokenizer": "byte",
        "model.vocab_size": VOCAB, "model.max_len": 32, "data.seq_len": 32,
        "batch_size": 16, "eval.batch_size": 16, "eval.num_batches": 2,
        "train.steps": 40, "train.log_every": 10, "train.progress": False, "eval.every": 40,
        "checkpoint.every": 40, "optimizer.lr": 0.3, "optimizer.warmup_steps": 2,
        "optimizer.decay_steps": 40})
