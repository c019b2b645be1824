"""UL2's mixture of denoisers (Tay et al. 2022, "UL2: Unifying Language Learning Paradigms") on
the T5 encoder-decoder: each row of a batch is corrupted by one denoiser, chosen by weight.

  R (regular)  T5 span corruption: short spans, low rate (mean span 3, density 0.15)  [NLU]
  X (extreme)  long spans or a high rate (e.g. mean span 32, density 0.5)             [NLG]
  S (sequential) prefix LM in seq2seq form: inputs = a random-length prefix,
               targets = the rest                                                     [S2S]

The denoiser's mode token is the first input token (section 3.1.2). Every denoiser reads its own
number of raw tokens (the most whose inputs and targets fit the encoder length ``data.seq_len``
and ``ul2.targets_length``), so rows of one batch differ in length: inputs and targets are
padded, padding hidden from the encoder (``encoder_mask``) and weighted 0 in the loss.

Config ``config.ul2``: ``targets_length``, and ``denoisers``: a tuple of (name, kind, mean span,
density, weight) with kind "span" or "prefix". A prefix denoiser reads as many raw tokens as
the longest span denoiser (the encoder length if none) and cuts them at a random point: the
suffix (its targets, at most ``targets_length`` - 1 tokens) is a fraction of the row drawn
uniform in (0, 2 * density], so ``density`` is its mean fraction; the prefix is what precedes it,
at most ``data.seq_len`` - 2 tokens. Mode tokens by group: a name starting with "r" [NLU], "x" [NLG],
"s" [S2S]. Metrics: ``loss`` over all target tokens, and ``ul2_{name}_loss`` for each denoiser over
its own tokens (``train/ul2_r_loss``, ...), pooled exactly (``text_common.component_means``).
"""
from __future__ import annotations

import numpy as np

from pretrainx.data import spans
from pretrainx.data import special_tokens as st
from pretrainx.objectives import losses, settings, text_common
from pretrainx.objectives.base import DENOMINATOR, register
from pretrainx.objectives.encoder_decoder import EncoderDecoderObjective

MODE_OF_GROUP = {"r": st.NLU, "x": st.NLG, "s": st.S2S}


def largest_fitting_raw(inputs_room: int, targets_room: int, density: float,
                        mean_span: float) -> int:
    """The most raw tokens whose span-corrupted inputs and targets fit the rooms given."""
    best = 0
    for raw in range(2, 4 * (inputs_room + targets_room)):
        i, t = spans.lengths_for_raw(raw, density, mean_span)
        if i <= inputs_room and t <= targets_room:
            best = raw
    if not best:
        raise settings.SettingError(
            f"config.ul2.denoisers: no row fits inputs {inputs_room} / targets {targets_room} "
            f"(data.seq_len - 1, ul2.targets_length) at density {density}, mean span "
            f"{mean_span}: raise them or shorten the spans")
    return best


@register("ul2")
class UL2(EncoderDecoderObjective):
    batch_keys = ("inputs", "targets", "decoder_inputs", "weights", "encoder_mask", "denoiser")

    def __init__(self, config, spec=None):
        super().__init__(config, spec)
        self.targets_length = targets_length(config)
        self.denoisers = [tuple(d) for d in config.ul2.denoisers]
        self.names = [f"ul2_{d[0]}" for d in self.denoisers]
        self.raw_lengths, self.num_spans = raw_lengths(config)      # checks the denoisers
        weights = np.asarray([float(d[4]) for d in self.denoisers])
        self.cumulative = np.cumsum(weights / weights.sum())
        self.raw_length = max(self.raw_lengths)
        self.sentinel_ids = (None if self.tokenizer is None
                             else st.sentinel_ids(self.tokenizer, self.num_spans))
        self.mode_ids = [self.spec.token_id(MODE_OF_GROUP[d[0][0]]) for d in self.denoisers]

    @classmethod
    def check_config(cls, config):
        settings.integer(config, "ul2.targets_length", 2)
        raw_lengths(config)     # the denoisers' ranges, and that each one's rows fit

    @classmethod
    def data_request(cls, config):
        lengths, num_spans = raw_lengths(config)
        sentinels = [st.sentinel(i) for i in reversed(range(num_spans))]
        return text_common.raw_request(config, max(lengths),
                                       (st.PAD, st.EOS, *st.MODES, *sentinels))

    def _corrupt(self, k: int, draws, tokens_BxL):
        """Denoiser k on every row: lists of input and target rows (mode token, EOS included)."""
        name, kind, mean_span, density, _ = self.denoisers[k]
        raw = self.raw_lengths[k]
        rows = tokens_BxL[:, :raw]
        B = rows.shape[0]
        if kind == "span":
            mask = spans.noise_mask(draws, B, raw, float(density), float(mean_span))
            pairs = [spans.corrupt_row(rows[b], mask[b], self.sentinel_ids, self.eos_id)
                     for b in range(B)]
        else:   # suffix fraction uniform in (0, 2 * density]; at least one token each side
            frac = (1.0 - draws.random((B,))) * 2 * float(density)
            suffix = np.clip(np.ceil(frac * raw), 1, min(raw - 1, self.targets_length - 1))
            cut = (raw - suffix).astype(int)
            start = np.maximum(cut - (self.inputs_length - 2), 0)
            pairs = [(np.append(rows[b, start[b]:cut[b]], self.eos_id),
                      np.append(rows[b, cut[b]:raw], self.eos_id)) for b in range(B)]
        return [np.concatenate([[self.mode_ids[k]], p[0]]) for p in pairs], [p[1] for p in pairs]

    def transform(self, batch, rng, *, ctx):
        tokens = np.asarray(batch["tokens"])
        B = tokens.shape[0]
        draws = ctx.draws(rng)
        choice = np.searchsorted(self.cumulative, draws.random((B,)), side="right")
        choice = np.minimum(choice, len(self.denoisers) - 1)
        # every denoiser draws for every row, so a row's draws do not depend on the others' choice
        made = [self._corrupt(k, draws, tokens) for k in range(len(self.denoisers))]
        inputs = np.full((B, self.inputs_length), self.pad_id, np.int32)
        targets = np.full((B, self.targets_length), self.pad_id, np.int32)
        for b in range(B):
            x, y = made[choice[b]][0][b], made[choice[b]][1][b]
            inputs[b, :len(x)], targets[b, :len(y)] = x, y
        in_len = np.asarray([len(made[choice[b]][0][b]) for b in range(B)])
        out_len = np.asarray([len(made[choice[b]][1][b]) for b in range(B)])
        return {"inputs": inputs, "targets": targets, "decoder_inputs": self.shift_right(targets),
                "encoder_mask": np.arange(self.inputs_length)[None] < in_len[:, None],
                "weights": (np.arange(self.targets_length)[None] < out_len[:, None]
                            ).astype(np.float32),
                "denoiser": choice.astype(np.int32)}

    def loss_fn(self, params, batch, rng, *, train, frozen, ctx=None):
        logits = self.logits(params, batch, rng, train=train)
        weights = batch["weights"]
        loss, nll, acc, count = losses.cross_entropy(logits, batch["targets"], weights=weights,
                                                     label_smoothing=self.label_smoothing)
        metrics = {"nll": nll, "accuracy": acc, DENOMINATOR: count}
        token_nll = -losses.target_logprobs(logits, batch["targets"])[0]
        for k, name in enumerate(self.names):
            mine = weights * (batch["denoiser"] == k)[:, None]
            text_common.add_component(metrics, name, token_nll, mine, count)
        return loss, metrics

    def finalize_metrics(self, metrics):
        return self.with_bits_per_byte(text_common.component_means(metrics, self.names))

    def sample_command(self, ctx, options):
        """Span filling behind [NLU] when the prompt holds sentinels; else the S-denoiser's
        prefix LM behind [S2S]: the prompt, then its continuation."""
        prompt = options["prompt"]
        if any(i in self.sentinel_index for i in self.tokenizer.encode(prompt)):
            return self.span_fill_command(ctx.params, options, [self.tokenizer.token_id(st.NLU)])
        ids = self.tokenizer.encode(prompt)
        suffix = self.decode_targets(ctx.params, [self.tokenizer.token_id(st.S2S)] + ids, [],
                                     int(options["max_new_tokens"]),
                                     temperature=float(options["temperature"]),
                                     top_k=int(options["top_k"] or 0), seed=int(options["seed"]))
        return self.tokenizer.decode(ids + suffix)


def targets_length(config) -> int:
    return int(config.ul2.targets_length)


def check_denoiser(denoiser) -> tuple:
    """One (name, kind, mean span, density, weight) entry of ``config.ul2.denoisers``, checked:
    a density in (0, 1) (a prefix denoiser's mean suffix fraction), spans of >= 1 token for a
    span denoiser, a weight >= 0."""
    where = f"config.ul2.denoisers entry {tuple(denoiser)!r}"
    if len(denoiser) != 5 or not isinstance(denoiser[0], str) or not denoiser[0]:
        raise settings.SettingError(f"{where}: give (name, kind, mean span, density, weight)")
    name, kind, mean_span, density, weight = denoiser
    if name[0] not in MODE_OF_GROUP or kind not in ("span", "prefix"):
        raise settings.SettingError(f"{where}: the name starts with r/x/s, the kind is 'span' "
                                    f"or 'prefix'")
    numbers = (mean_span, density, weight)
    if any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in numbers):
        raise settings.SettingError(f"{where}: mean span, density and weight are numbers")
    if not 0 < density < 1 or (kind == "span" and mean_span < 1) or weight < 0:
        raise settings.SettingError(
            f"{where}: needs density in (0, 1){', mean span >= 1' if kind == 'span' else ''}"
            f" and weight >= 0")
    return tuple(denoiser)


def raw_lengths(config) -> tuple[list[int], int]:
    """(raw tokens each denoiser reads, the most sentinels a span denoiser needs), checked."""
    denoisers = [check_denoiser(d) for d in config.ul2.denoisers]
    if not denoisers:
        raise settings.SettingError("config.ul2.denoisers is empty: give at least one")
    names = [f"ul2_{d[0]}" for d in denoisers]
    if len(set(names)) != len(names):
        raise settings.SettingError(f"config.ul2.denoisers: names must differ, got {names}")
    weights = np.asarray([float(d[4]) for d in denoisers])
    if weights.sum() <= 0:
        raise settings.SettingError(f"config.ul2.denoisers: the weights are all 0: {weights}")
    lengths, num_spans = [], 1
    room_in, room_out = int(config.data.seq_len) - 1, targets_length(config)   # a mode token first
    for name, kind, mean_span, density, _ in denoisers:
        raw = 0
        if kind == "span":
            raw = largest_fitting_raw(room_in, room_out, float(density), float(mean_span))
            num_spans = max(num_spans, spans.span_counts(raw, float(density), float(mean_span))[1])
        lengths.append(raw)
    longest = max(lengths) or room_in
    return [r or longest for r in lengths], num_spans
