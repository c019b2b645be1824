"""A causal + masked LM mixture on one decoder: each row is, by weight, a next-token row (causal
attention, loss on every next token) or a masked row (bidirectional attention, BERT's 80/10/10
masking, loss on the selected tokens), both through the same GPT and its output layer.

The GPT runs with ``model.attention_kind = "prefix"``: a masked row's ``prefix_mask`` is all
True (every token sees every token), a causal row's all False (plain causal attention). The data
gives rows of T + 1 raw tokens: a causal row reads tokens [0, T) and predicts [1, T + 1); a
masked row reads the corrupted tokens [0, T) and predicts the originals in place.

Config ``config.mixture``: ``mlm_weight`` (the chance of a masked row; 0 is pure ``clm``, 1 pure
masked LM on a decoder), ``eval_mlm_weight`` (the same chance for validation rows; < 0, the
default: ``mlm_weight``; 0 scores every validation row causally, so ``val/clm_loss`` is over the
same rows for every training mixture, pure masked LM included) and the masking settings of
``config.mlm`` (rate, schedule, whole_word).
Metrics: ``loss`` over all target tokens; ``clm_loss`` and ``mlm_loss`` each over its own tokens
(pooled exactly: ``text_common.component_means``); ``accuracy`` over all targets. No perplexity:
the pooled NLL mixes two tasks (``val/clm_loss`` is the causal one).
``pretrainx sample`` continues a prompt causally, or fills its [MASK]s with the masked half
(bidirectional attention) when it holds one; the eval samples continue ``sample.prompt``.
"""
from __future__ import annotations

import numpy as np

from pretrainx.data import masking
from pretrainx.data import special_tokens as st
from pretrainx.errors import UserError
from pretrainx.objectives import losses, settings, text_common
from pretrainx.objectives.base import DENOMINATOR, register
from pretrainx.objectives.clm import CausalLM
from pretrainx.objectives.masking_mixin import MaskingMixin

COMPONENTS = ("clm", "mlm")


@register("clm_mlm")
class CausalMaskedMixture(MaskingMixin, CausalLM):
    batch_keys = ("inputs", "targets", "weights", "prefix_mask", "is_masked")

    def __init__(self, config, spec=None):
        super().__init__(config, spec)
        if self.model_config.attention_kind != "prefix":
            raise UserError("clm_mlm needs config.model.attention_kind='prefix' (a masked row "
                            "attends both ways, a causal row causally)")
        if config.data.packing != "stream":
            raise UserError("clm_mlm reads whole rows: set config.data.packing='stream'")
        mixture = config.mixture
        self.mlm_weight = float(mixture.mlm_weight)
        self.eval_mlm_weight = float(mixture.eval_mlm_weight)
        if self.eval_mlm_weight < 0:
            self.eval_mlm_weight = self.mlm_weight
        self._init_masking(config)
        self.seq_len = int(config.data.seq_len)

    @classmethod
    def check_config(cls, config):
        super().check_config(config)     # the masking rates
        settings.number(config, "mixture.mlm_weight", 0.0, 1.0)
        settings.number(config, "mixture.eval_mlm_weight", high=1.0)   # < 0: mlm_weight

    @classmethod
    def data_request(cls, config):
        return text_common.raw_request(config, int(config.data.seq_len) + 1, (st.MASK,))

    def init(self, rng):
        import jax.numpy as jnp
        tokens = jnp.zeros((1, self.seq_len), jnp.int32)
        return self.model.init({"params": rng}, tokens, prefix_mask=jnp.zeros_like(tokens, bool),
                               train=False)["params"]

    def transform(self, batch, rng, *, ctx):
        raw = np.asarray(batch["tokens"])
        B, T = raw.shape[0], self.seq_len
        draws = ctx.draws(rng)
        weight = self.mlm_weight if ctx.train else self.eval_mlm_weight
        is_masked = draws.random((B,)) < weight
        masked_in, selected = masking.mask_tokens(draws, raw[:, :T], self.tables, self.rate(ctx),
                                                  whole_word=self.whole_word)
        m = is_masked[:, None]
        return {"inputs": np.where(m, masked_in, raw[:, :T]).astype(np.int32),
                "targets": np.where(m, raw[:, :T], raw[:, 1:]).astype(np.int32),
                "weights": np.where(m, selected, 1.0).astype(np.float32),
                "prefix_mask": np.broadcast_to(m, (B, T)).copy(),
                "is_masked": is_masked.astype(np.float32)}

    def loss_fn(self, params, batch, rng, *, train, frozen, ctx=None):
        logits = self.logits(params, batch, rng, train=train)
        w = batch["weights"]
        loss, nll, acc, count = losses.cross_entropy(logits, batch["targets"], weights=w,
                                                     label_smoothing=self.label_smoothing)
        metrics = {"nll": nll, "accuracy": acc, DENOMINATOR: count}
        token_nll = -losses.target_logprobs(logits, batch["targets"])[0]
        masked = batch["is_masked"][:, None]
        text_common.add_component(metrics, "clm", token_nll, w * (1.0 - masked), count)
        text_common.add_component(metrics, "mlm", token_nll, w * masked, count)
        return loss, metrics

    def finalize_metrics(self, metrics):
        return self.with_bits_per_byte(text_common.component_means(metrics, COMPONENTS))

    # --- generation: a causal continuation, or fill-mask for a prompt holding [MASK] ------------
    def mask_logits(self, params, ids):
        """The logits (T x V) of a masked row: every token attends to every token."""
        tokens = np.asarray([ids], np.int32)
        return np.asarray(self.model.apply({"params": params}, tokens,
                                           prefix_mask=np.ones(tokens.shape, bool)))[0]

    def sample_command(self, ctx, options):
        """Fill-mask (``masking_mixin.py``) when ``--prompt`` holds [MASK], else the causal
        continuation (``--max-new-tokens``) the CLM half was trained for."""
        if self.mask_id in self.tokenizer.encode(options["prompt"]):
            return self.fill_mask_command(ctx.params, options, self.model_config.max_len)
        return super().sample_command(ctx, options)
