"""Causal language modelling (GPT): predict token t+1 from tokens <= t.

Batch: ``inputs``, ``targets`` (B x T int32); optional ``weights`` (padding mask), ``segment_ids``
and ``positions`` (packed documents: attention stays inside a document), ``prefix_length`` or
``prefix_mask`` (a prefix LM with ``model.attention_kind="prefix"``), ``input_mask`` (padding keys).

The loss is the mean over weighted target tokens and reports their count as its denominator, so
gradient accumulation and validation pool the true token mean of packed or padded batches;
perplexity, bits per token, per character and per byte (``bpb``,
``TextObjective.with_bits_per_byte``) are derived from the pooled NLL (``finalize_metrics``).
"""
from __future__ import annotations

import jax.numpy as jnp

from pretrainx.objectives import losses
from pretrainx.objectives.base import DENOMINATOR, EvalContext, register
from pretrainx.objectives.text_lm import LN2, CausalPolicy, TextObjective, TextSampleEvaluator


@register("clm")
class CausalLM(TextObjective):
    batch_keys = ("inputs", "targets")
    tokens_key = "inputs"

    def __init__(self, config, spec=None):
        super().__init__(config, spec)
        self.policy = CausalPolicy(self.model_config, self.tokenizer, config.sample)
        self.model = self.policy.model
        self.label_smoothing = float(config.loss.label_smoothing)

    def init(self, rng):
        return self.policy.init(rng, int(self.config.data.seq_len))

    def logits(self, params, batch, rng, *, train: bool):
        return self.model.apply({"params": params}, batch["inputs"], positions=batch.get("positions"),
                                segment_ids=batch.get("segment_ids"),
                                prefix_length=batch.get("prefix_length"),
                                prefix_mask=batch.get("prefix_mask"),
                                input_mask=batch.get("input_mask"), train=train,
                                rngs={"dropout": rng} if train else None)

    def loss_fn(self, params, batch, rng, *, train, frozen, ctx=None):
        logits = self.logits(params, batch, rng, train=train)
        loss, nll, acc, tokens = losses.cross_entropy(
            logits, batch["targets"], weights=batch.get("weights"),
            label_smoothing=self.label_smoothing)
        return loss, {"nll": nll, "accuracy": acc, DENOMINATOR: tokens}

    def finalize_metrics(self, metrics):
        nll = metrics["nll"]
        metrics = {**metrics, "perplexity": jnp.exp(nll), "bits_per_token": nll / LN2}
        # Bits per character of the raw validation text, whatever the tokenizer: the val split's
        # own tokens per character (a split's ratio can differ from the corpus's, e.g. non-ASCII
        # text under bytes or BPE). Train metrics use the same ratio, an approximation.
        chars, tokens = self.spec.info.get("val_chars"), self.spec.info.get("val_tokens")
        if chars and tokens:
            metrics["bits_per_char"] = nll / LN2 * (tokens / chars)
        return self.with_bits_per_byte(metrics)

    def flops_per_batch(self, batch):
        return self.flops_per_token() * batch["inputs"].size

    # --- generation ---------------------------------------------------------------------------
    def sample_options(self):
        return self.policy.sample_options()

    def sample_command(self, ctx: EvalContext, options: dict) -> str:
        return self.policy.sample_command(ctx.params, options)

    def evaluators(self):
        return [TextSampleEvaluator(self.policy)]
