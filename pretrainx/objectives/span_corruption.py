"""T5's span-corruption pretraining (Raffel et al. 2020) on the T5 encoder-decoder
(``models/t5.py``); the corruption itself is ``data/spans.py``.

Config: ``data.seq_len`` is the *encoder input* length (T5: 512); the objective asks the data for
the raw length that fills it exactly (568 at the defaults) and the targets have a fixed length
(114). ``config.span``: ``noise_density`` (0.15), ``mean_span_length`` (3.0).

Batch (after ``transform``): ``inputs`` (B, I) the corrupted text ending in EOS, ``targets``
(B, T) sentinel + span for each span then EOS, ``decoder_inputs`` the targets shifted right
behind the pad id (T5 starts decoding from it), ``weights`` ones (every target counts).

Metrics: ``loss``/``nll`` per target token (their count the denominator), ``accuracy``.
``pretrainx sample --prompt "To be or <extra_id_0> to be"`` prints the prompt with each sentinel
replaced by its generated span, then the spans (``encoder_decoder.py``); the eval samples fill
``sample.prompt`` the same way.
"""
from __future__ import annotations

import numpy as np

from pretrainx.data import spans
from pretrainx.data import special_tokens as st
from pretrainx.objectives import settings, text_common
from pretrainx.objectives.base import register
from pretrainx.objectives.encoder_decoder import EncoderDecoderObjective


@register("span_corruption")
class SpanCorruption(EncoderDecoderObjective):

    def __init__(self, config, spec=None):
        super().__init__(config, spec)
        self.density, self.mean_span = span_settings(config)
        self.raw_length, self.targets_length = spans.raw_length_for(
            self.inputs_length, self.density, self.mean_span)
        self.num_spans = spans.span_counts(self.raw_length, self.density, self.mean_span)[1]
        self.sentinel_ids = (None if self.tokenizer is None
                             else st.sentinel_ids(self.tokenizer, self.num_spans))

    @classmethod
    def check_config(cls, config):
        density, mean_span = span_settings(config)
        raw, _ = spans.raw_length_for(int(config.data.seq_len), density, mean_span)
        if raw * density < 1 or raw * (1 - density) < 1:
            raise settings.SettingError(
                f"config.span.noise_density {density:g} of a row of {raw} raw tokens "
                f"(data.seq_len {config.data.seq_len}) is {raw * density:.2f} noise tokens: a row "
                f"needs at least one noise and one kept token; raise data.seq_len or move the "
                f"density")
        text_common.check_sample_prompt(config, "<extra_id_", st.sentinel(0))

    @classmethod
    def data_request(cls, config):
        density, mean_span = span_settings(config)
        raw_length, _ = spans.raw_length_for(int(config.data.seq_len), density, mean_span)
        num_spans = spans.span_counts(raw_length, density, mean_span)[1]
        # <extra_id_0> asked last, so a char/byte vocabulary gets it at the top and the next
        # sentinels descending from there, as T5's vocabulary has them
        sentinels = [st.sentinel(i) for i in reversed(range(num_spans))]
        return text_common.raw_request(config, raw_length, (st.PAD, st.EOS, *sentinels))

    def transform(self, batch, rng, *, ctx):
        tokens = np.asarray(batch["tokens"])
        inputs, targets, _ = spans.span_corrupt(ctx.draws(rng), tokens, self.sentinel_ids,
                                                self.eos_id, self.density, self.mean_span)
        return {"inputs": inputs, "targets": targets, "decoder_inputs": self.shift_right(targets),
                "weights": np.ones(targets.shape, np.float32)}


def span_settings(config) -> tuple[float, float]:
    """(noise density, mean span length) of ``config.span``, checked."""
    density = settings.number(config, "span.noise_density", 0.0, 1.0, low_open=True,
                              high_open=True)
    return density, settings.number(config, "span.mean_span_length", 1.0)
