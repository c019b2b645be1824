"""Masked language modelling (BERT; Devlin et al. 2019), with RoBERTa's dynamic masking, optional
whole-word masking and a masking-rate schedule (``data/masking.py`` holds the corruption).

Config (``config.mlm``): ``rate`` (the masking rate; a schedule's last), ``rate_schedule``
("constant" | "linear" | "cosine"), ``rate_start`` (a schedule's first rate), ``eval_rate``
(validation always masks at this rate, so runs with different schedules compare), and
``whole_word``.

Batch (after ``transform``): ``inputs`` (corrupted tokens; a stream row starts with [CLS]),
``targets`` (the original tokens), ``weights`` (1 on the selected positions: the loss is taken
there only), ``mask_rate`` (B,) the rate drawn with, ``candidates`` (B,) tokens that could have
been selected, and ``segment_ids``/``positions`` for packed rows.

Metrics: ``loss`` and ``nll`` (mean over selected tokens, their count the denominator),
``accuracy`` (masked-token accuracy), ``unigram_accuracy`` (always predicting the most frequent
training token on the same positions: the baseline), ``mask_rate`` and ``selected_fraction``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.objectives import losses
from pretrainx.data import masking
from pretrainx.data import special_tokens as st
from pretrainx.models import bert, transformer
from pretrainx.objectives import text_common
from pretrainx.objectives.base import DENOMINATOR, EvalContext, Objective, register


class MaskingMixin:
    """The masking half of an objective: config, vocabulary tables, the rate of a step."""

    def _init_masking(self, config):
        m = config.get("mlm", {})
        self.rate_end = float(m.get("rate", 0.15))
        self.rate_start = float(m.get("rate_start", self.rate_end))
        self.schedule = m.get("rate_schedule", "constant")
        self.eval_rate = float(m.get("eval_rate", 0.15))
        self.whole_word = bool(m.get("whole_word", False))
        masking.masking_rate(self.schedule, self.rate_start, self.rate_end, 0.0)   # checks names
        for name, r in (("rate", self.rate_end), ("rate_start", self.rate_start),
                        ("eval_rate", self.eval_rate)):
            if not 0.0 < r < 1.0:
                raise ValueError(f"config.mlm.{name} must be in (0, 1), got {r}")
        self.tables = None

    def rate(self, ctx) -> float:
        """The masking rate of the batch for ``ctx`` (a BatchContext): the schedule's at the
        train step, ``eval_rate`` for validation."""
        if not ctx.train:
            return self.eval_rate
        return masking.masking_rate(self.schedule, self.rate_start, self.rate_end,
                                    ctx.step / max(ctx.total_steps, 1))

    def _bind_tables(self, tokenizer, vocab_size: int):
        self.tables = masking.vocab_tables(tokenizer, vocab_size)
        self.mask_id = self.tables.mask_id


@register("mlm")
class MaskedLM(MaskingMixin, Objective):
    batch_keys = ("inputs", "targets", "weights")
    tokens_key = "inputs"
    special_tokens = (st.PAD, st.CLS, st.SEP, st.MASK)

    def __init__(self, config):
        super().__init__(config)
        self.model_config = transformer.TransformerConfig.from_config(config.model)
        self.model = bert.Bert(self.model_config)
        self.seq_len = int(config.data.seq_len)
        self.packed = config.data.get("packing", "stream") != "stream"
        self.label_smoothing = float(config.get("loss", {}).get("label_smoothing", 0.0))
        self._init_masking(config)
        self.most_frequent = 0

    def data_request(self):
        # a stream row gets [CLS] in front (the token a classifier later pools), so it reads one
        # token less; packed rows carry their documents' own BOS/EOS
        raw = self.seq_len if self.packed else self.seq_len - 1
        return text_common.raw_request(self.config, raw, self.special_tokens)

    def bind_data(self, dataset) -> None:
        super().bind_data(dataset)
        text_common.check_vocab(dataset.tokenizer, self.model_config.vocab_size)
        self._bind_tables(dataset.tokenizer, self.model_config.vocab_size)
        self.cls_id = dataset.tokenizer.token_id(st.CLS)
        if dataset.train is not None:
            self.most_frequent = text_common.most_frequent_token(dataset,
                                                                 self.model_config.vocab_size)

    def transform(self, batch, rng, *, ctx):
        tokens = np.asarray(batch["tokens"])
        B = tokens.shape[0]
        extra = {k: batch[k] for k in ("segment_ids", "positions") if k in batch}
        if not self.packed:
            tokens = np.concatenate([np.full((B, 1), self.cls_id, tokens.dtype), tokens], axis=1)
        rate = self.rate(ctx)
        inputs, selected = masking.mask_tokens(ctx.draws(rng), tokens, self.tables, rate,
                                               whole_word=self.whole_word,
                                               segment_ids=extra.get("segment_ids"))
        cand = masking.candidates(tokens, self.tables, extra.get("segment_ids"))
        return {"inputs": inputs, "targets": tokens.astype(np.int32),
                "weights": selected.astype(np.float32),
                "mask_rate": np.full((B,), rate, np.float32),
                "candidates": cand.sum(axis=1).astype(np.float32), **extra}

    def init(self, rng):
        tokens = jnp.zeros((1, self.seq_len), jnp.int32)
        return self.model.init({"params": rng}, tokens, train=False)["params"]

    def logits(self, params, batch, rng, *, train: bool):
        return self.model.apply({"params": params}, batch["inputs"],
                                positions=batch.get("positions"),
                                segment_ids=batch.get("segment_ids"), train=train,
                                rngs={"dropout": rng} if train else None)

    def loss_fn(self, params, batch, rng, *, train, frozen, ctx=None):
        logits = self.logits(params, batch, rng, train=train)
        return masked_lm_loss(logits, batch, self.most_frequent, self.label_smoothing)

    def finalize_metrics(self, metrics):
        metrics = dict(metrics)
        per = metrics.pop("candidates_per_selected", None)
        if per is not None:
            metrics["selected_fraction"] = 1.0 / jnp.maximum(per, 1e-12)
        return metrics

    def flops_per_batch(self, batch):
        if not hasattr(self, "_flops_per_token"):
            abstract = jax.eval_shape(self.init, jax.random.PRNGKey(0))
            self._flops_per_token = text_common.flops_per_token(self.model_config, abstract,
                                                                self.seq_len)
        return self._flops_per_token * batch["inputs"].size

    def sample_command(self, ctx: EvalContext, options: dict) -> str:
        """Fill the [MASK] tokens of ``--prompt`` with the model's most likely tokens."""
        prompt = options.get("prompt") or f"To be or not to {st.MASK} that is the question"
        ids = [self.cls_id] + self.tokenizer.encode(prompt)
        if len(ids) > self.model_config.max_len:
            raise ValueError(f"the prompt has {len(ids)} tokens; the model reads at most "
                             f"{self.model_config.max_len}")
        tokens = np.asarray([ids], np.int32)
        logits = np.asarray(self.model.apply({"params": ctx.params}, tokens))[0]
        filled = np.where(tokens[0] == self.mask_id, logits.argmax(-1), tokens[0])
        return self.tokenizer.decode(filled[1:].tolist())


def masked_lm_loss(logits_BxTxV, batch, most_frequent: int, label_smoothing: float = 0.0):
    """Cross-entropy on the selected positions only (``weights``), their count the denominator;
    masked-token accuracy and the unigram baseline's on the same positions."""
    weights = batch["weights"]
    loss, nll, acc, count = losses.cross_entropy(logits_BxTxV, batch["targets"], weights=weights,
                                                 label_smoothing=label_smoothing)
    denom = jnp.maximum(count, 1.0)
    baseline = ((batch["targets"] == most_frequent) * weights).sum() / denom
    metrics = {"nll": nll, "accuracy": acc, "unigram_accuracy": baseline, DENOMINATOR: count}
    if "mask_rate" in batch:
        metrics["mask_rate"] = batch["mask_rate"].mean()
    if "candidates" in batch:      # pooled by the selected count: sum(candidates) / sum(selected)
        metrics["candidates_per_selected"] = batch["candidates"].sum() / denom
    return loss, metrics
