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

``pretrainx sample --prompt "ROMEO: I [MASK]ove thee"`` and the eval samples print the prompt with
its [MASK]s filled, then each mask's top candidates and their probabilities (``masking_mixin.py``).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from pretrainx.data import masking
from pretrainx.data import special_tokens as st
from pretrainx.models import bert
from pretrainx.objectives import losses, sample_flags, text_common
from pretrainx.objectives.base import DENOMINATOR, DataSpec, EvalContext, register
from pretrainx.objectives.masking_mixin import MaskingMixin
from pretrainx.objectives.text_lm import SampleFileEvaluator, TextObjective

#: the spec's info key of the most frequent ordinary training token (``MaskedLM.data_spec``)
MOST_FREQUENT = "most_frequent_token"


@register("mlm")
class MaskedLM(MaskingMixin, TextObjective):
    batch_keys = ("inputs", "targets", "weights")
    tokens_key = "inputs"
    special_tokens = (st.PAD, st.CLS, st.SEP, st.MASK)

    def __init__(self, config, spec: DataSpec | None = None):
        super().__init__(config, spec)
        self.model = bert.Bert(self.model_config)
        self.seq_len = int(config.data.seq_len)
        self.packed = config.data.packing != "stream"
        self.label_smoothing = float(config.loss.label_smoothing)
        self._init_masking(config)
        self.cls_id = self.spec.token_id(st.CLS)
        self.most_frequent = int(self.spec.info.get(MOST_FREQUENT, 0))

    @classmethod
    def data_request(cls, config):
        # a stream row gets [CLS] in front (the token a classifier later pools), so it reads one
        # token less; packed rows carry their documents' own BOS/EOS
        packed = config.data.packing != "stream"
        seq_len = int(config.data.seq_len)
        return text_common.raw_request(config, seq_len if packed else seq_len - 1,
                                       cls.special_tokens)

    @classmethod
    def check_config(cls, config):
        super().check_config(config)          # the masking rates
        text_common.check_sample_prompt(config, st.MASK, st.MASK)

    @classmethod
    def data_spec(cls, config, dataset) -> DataSpec:
        """The data's spec and its most frequent ordinary token (the unigram baseline)."""
        most = text_common.most_frequent_token(dataset, int(config.model.vocab_size))
        return DataSpec.of(dataset, **{MOST_FREQUENT: most})

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
        return self.with_bits_per_byte(metrics)   # of the masked tokens: see its docstring

    def flops_per_batch(self, batch):
        return self.flops_per_token(self.seq_len) * batch["inputs"].size

    def sample_options(self):
        s = self.config.sample
        return (sample_flags.prompt(s.prompt), sample_flags.temperature(s.temperature),
                sample_flags.top_k(s.top_k), sample_flags.seed(0))

    def mask_logits(self, params, ids):
        """The model's logits (T x V) at the prompt's tokens, read behind [CLS] as in training."""
        tokens = np.asarray([[self.cls_id] + list(ids)], np.int32)
        return np.asarray(self.model.apply({"params": params}, tokens))[0, 1:]

    def sample_command(self, ctx: EvalContext, options: dict) -> str:
        """Fill the [MASK]s of ``--prompt``: the text, then each mask's top candidates
        (``masking_mixin.py``)."""
        return self.fill_mask_command(ctx.params, options, self.model_config.max_len - 1)

    def evaluators(self):
        return [SampleFileEvaluator(self.sample_at_eval)]


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
