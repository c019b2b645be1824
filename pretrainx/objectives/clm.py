"""Causal language modelling (GPT): predict token t+1 from tokens <= t.

Batch: ``inputs``, ``targets`` (B x T int32); optional ``weights`` (padding mask), ``segment_ids``
and ``positions`` (packed documents: attention stays inside a document), ``prefix_length`` or
``prefix_mask`` (a prefix LM with ``model.attention_kind="prefix"``), ``input_mask`` (padding keys).

The loss is the mean over weighted target tokens and reports their count as its denominator, so
gradient accumulation and validation pool the true token mean of packed or padded batches;
perplexity and bits are derived from the pooled NLL (``finalize_metrics``).
"""
from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.models import decoding

from pretrainx.objectives import losses
from pretrainx.models import gpt, transformer
from pretrainx.objectives.base import DENOMINATOR, EvalContext, Objective, register

LN2 = math.log(2.0)


@register("clm")
class CausalLM(Objective):
    batch_keys = ("inputs", "targets")
    tokens_key = "inputs"

    def __init__(self, config):
        super().__init__(config)
        self.model_config = transformer.TransformerConfig.from_config(config.model)
        self.model = gpt.GPT(self.model_config)
        self.label_smoothing = float(config.get("loss", {}).get("label_smoothing", 0.0))

    def bind_data(self, dataset) -> None:
        super().bind_data(dataset)
        vocab = getattr(dataset.tokenizer, "vocab_size", None)
        if vocab is not None and vocab > self.model_config.vocab_size:
            raise ValueError(f"the tokenizer has {vocab} tokens but config.model.vocab_size is "
                             f"{self.model_config.vocab_size}; set --config.model.vocab_size={vocab}")

    def init(self, rng):
        seq = int(self.config.data.seq_len)
        tokens = jnp.zeros((1, seq), jnp.int32)
        return self.model.init({"params": rng}, tokens, train=False)["params"]

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
        chars, tokens = self.data_info.get("val_chars"), self.data_info.get("val_tokens")
        if chars and tokens:
            metrics["bits_per_char"] = nll / LN2 * (tokens / chars)
        return metrics

    def flops_per_token(self) -> float:
        """nanoGPT's 6N + 12·L·H·Q·T, T the model's sequence length (``data.seq_len``)."""
        if not hasattr(self, "_flops_per_token"):
            n = gpt.param_count(self._abstract_params(), non_embedding=True)
            self._flops_per_token = gpt.flops_per_token(self.model_config, n,
                                                        int(self.config.data.seq_len))
        return self._flops_per_token

    def flops_per_batch(self, batch):
        return self.flops_per_token() * batch["inputs"].size

    def _abstract_params(self):
        import flax.linen as nn
        return nn.unbox(jax.eval_shape(self.init, jax.random.PRNGKey(0)))

    # --- generation ---------------------------------------------------------------------------
    def generate_text(self, params, prompt: str, *, max_new_tokens: int, temperature: float,
                      top_k: int | None, seed: int) -> str:
        if self.tokenizer is None:
            raise ValueError("no tokenizer bound: sampling needs the run's tokenizer.json")
        ids = self.tokenizer.encode(prompt) or [0]
        vocab = min(self.tokenizer.vocab_size, self.model_config.vocab_size)
        out = decoding.generate(gpt.GPTDecoder(self.model_config), params,
                                np.asarray(ids, np.int32), max_new_tokens,
                                rng=jax.random.PRNGKey(seed), temperature=temperature,
                                top_k=min(top_k, vocab) if top_k else None, vocab_size=vocab)
        return self.tokenizer.decode(np.asarray(out)[0].tolist())

    def sample_command(self, ctx: EvalContext, options: dict) -> str:
        if options.get("best_of"):
            raise ValueError("--best-of needs a reward model: sample a PPO run's workdir "
                             "(its frozen reward model and reference; --policy reference)")
        s = self.config.sample
        pick = lambda k, d: d if options.get(k) is None else options[k]
        budget = self.model_config.max_len - len(self.tokenizer.encode(pick("prompt", s.prompt)))
        if budget <= 0:
            raise ValueError(f"the prompt is {self.model_config.max_len - budget} tokens, the "
                             f"model's context {self.model_config.max_len}: shorten it")
        return self.generate_text(ctx.params, pick("prompt", s.prompt),
                                  max_new_tokens=min(pick("max_new_tokens", s.max_new_tokens), budget),
                                  temperature=pick("temperature", s.temperature),
                                  top_k=pick("top_k", s.top_k), seed=pick("seed", 0))

    def evaluators(self):
        return [TextSampleEvaluator(self)]


class TextSampleEvaluator:
    """Writes a short sample to ``workdir/samples/step_N.txt`` at each eval: a look, not a metric."""
    name = "text_sample"

    def __init__(self, objective: CausalLM):
        self.objective = objective

    def __call__(self, ctx: EvalContext):
        s = self.objective.config.sample
        max_len = self.objective.model_config.max_len
        # A prompt of any length: its last half-context at most, and room for the rest.
        ids = self.objective.tokenizer.encode(s.prompt)[-(max_len // 2):]
        prompt = self.objective.tokenizer.decode(ids)
        n = min(int(s.max_new_tokens), max_len - max(len(self.objective.tokenizer.encode(prompt)), 1))
        text = self.objective.generate_text(ctx.params, prompt, max_new_tokens=n,
                                            temperature=float(s.temperature), top_k=int(s.top_k),
                                            seed=ctx.step)
        if ctx.workdir and jax.process_index() == 0:
            os.makedirs(os.path.join(ctx.workdir, "samples"), exist_ok=True)
            with open(os.path.join(ctx.workdir, "samples", f"step_{ctx.step:06d}.txt"), "w") as f:
                f.write(text)
        return []
