"""The base of the T5 objectives (``span_corruption``, ``ul2``): the encoder-decoder model, its
init at the (inputs, targets) lengths, the teacher-forced loss on weighted targets, decoder
inputs shifted right behind the pad id, FLOPs, and span filling as the sampler.

Config: ``data.seq_len`` is the encoder input length; ``data.packing`` must be "stream" (the
corruption reads fixed raw rows); ``sample.{prompt, max_new_tokens, temperature, top_k}``.

Span filling (``pretrainx sample``, and the sample written at each eval): the prompt's sentinels
mark the gaps; the decoder starts from the first gap's sentinel (as every span-corrupted target
row does) and samples the targets (``<extra_id_0> span <extra_id_1> span ... </s>``) at
``--temperature`` with ``--seed`` (greedy at 0); what is printed is the prompt with each
sentinel replaced by its span, then one line per span.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.data import special_tokens as st
from pretrainx.errors import UserError
from pretrainx.models import decoding, t5
from pretrainx.objectives import losses, sample_flags
from pretrainx.objectives.base import DENOMINATOR, DataSpec, EvalContext
from pretrainx.objectives.text_lm import SampleFileEvaluator, TextObjective


class EncoderDecoderObjective(TextObjective):
    """What every T5 objective shares: the model, init at (inputs, targets) lengths, the
    teacher-forced loss on weighted targets, FLOPs and span filling as the sampler."""
    batch_keys = ("inputs", "targets", "decoder_inputs", "weights")
    tokens_key = "inputs"

    def __init__(self, config, spec: DataSpec | None = None):
        super().__init__(config, spec)
        self.model = t5.T5(self.model_config)
        self.label_smoothing = float(config.loss.label_smoothing)
        if config.data.packing != "stream":
            raise UserError(f"{type(self).__name__} corrupts fixed raw rows: set "
                            f"config.data.packing='stream'")
        self.inputs_length = int(config.data.seq_len)
        self.targets_length = self.inputs_length      # subclasses set theirs
        self.pad_id, self.eos_id = self.spec.token_id(st.PAD), self.spec.token_id(st.EOS)

    def init(self, rng):
        enc = jnp.zeros((1, self.inputs_length), jnp.int32)
        dec = jnp.zeros((1, self.targets_length), jnp.int32)
        return self.model.init({"params": rng}, enc, dec, train=False)["params"]

    def logits(self, params, batch, rng, *, train: bool):
        return self.model.apply({"params": params}, batch["inputs"], batch["decoder_inputs"],
                                encoder_mask=batch.get("encoder_mask"), train=train,
                                rngs={"dropout": rng} if train else None)

    def loss_fn(self, params, batch, rng, *, train, frozen, ctx=None):
        logits = self.logits(params, batch, rng, train=train)
        loss, nll, acc, count = losses.cross_entropy(logits, batch["targets"],
                                                     weights=batch["weights"],
                                                     label_smoothing=self.label_smoothing)
        return loss, {"nll": nll, "accuracy": acc, DENOMINATOR: count}

    def finalize_metrics(self, metrics):
        return self.with_bits_per_byte(metrics)   # of the span targets: see its docstring

    def shift_right(self, targets_BxT):
        """Decoder inputs for teacher forcing: the targets one step right, the pad id first
        (T5 starts decoding from it)."""
        return np.concatenate([np.full((targets_BxT.shape[0], 1), self.pad_id, np.int32),
                               targets_BxT[:, :-1]], axis=1).astype(np.int32)

    def flops_per_batch(self, batch):
        """6N per encoder token and per decoder token (attention's quadratic term left out)."""
        return 6.0 * t5.param_count(self.param_shapes) * (batch["inputs"].size
                                                           + batch["targets"].size)

    def decode_targets(self, params, input_ids: list[int], start: list[int], max_new_tokens: int,
                       *, temperature: float = 0.0, top_k: int = 0, seed: int = 0) -> list[int]:
        """The decoder's tokens for the encoder input ``input_ids`` (EOS appended here): ``start``
        (forced after the pad id T5 starts from), then sampled ones (greedy at temperature 0,
        among the ``top_k`` most likely when > 0, drawn with ``seed``) up to EOS."""
        ids = list(input_ids) + [self.eos_id]
        if len(ids) > self.inputs_length:
            raise UserError(f"the prompt has {len(ids)} tokens; the encoder reads "
                            f"{self.inputs_length}")
        enc = np.asarray([ids], np.int32)
        encoded = t5.encoded_params(self.model_config, params, enc, np.ones_like(enc, bool))
        prompt = np.asarray([[self.pad_id, *start]], np.int32)
        n = min(max_new_tokens, self.model_config.max_len - prompt.shape[1] + 1)  # no sliding
        vocab = min(self.tokenizer.vocab_size, self.model_config.vocab_size)
        out = decoding.continue_prompt(t5.T5Decoder(self.model_config), encoded, prompt, n,
                                       rng=jax.random.key(seed), temperature=temperature,
                                       top_k=min(top_k, vocab) if top_k else None,
                                       eos_id=self.eos_id, vocab_size=vocab)
        gen = [int(i) for i in out[0, 1:]]
        return gen[:gen.index(self.eos_id)] if self.eos_id in gen else gen

    def fill_spans(self, params, prompt: str, max_new_tokens: int, prefix_ids=()) -> str:
        """The greedy target text for ``prompt`` (``prefix_ids`` before it): what the decoder
        emits, sentinels included (the evaluation harness's generation)."""
        ids = list(prefix_ids) + self.tokenizer.encode(prompt)
        return self.tokenizer.decode(self.decode_targets(params, ids, [], max_new_tokens))

    def span_fill_command(self, params, options: dict, prefix_ids=()) -> str:
        """``pretrainx sample`` on a prompt with sentinels: the prompt with each sentinel
        replaced by the span generated for it, then a table of the spans (``span_display``)."""
        prompt_ids = self.tokenizer.encode(options["prompt"])
        gaps = [i for i in prompt_ids if i in self.sentinel_index]
        if not gaps:
            raise UserError(f"the prompt {options['prompt']!r} has no sentinel: put "
                            f"{st.sentinel(0)} where a span is to be filled ({st.sentinel(1)} "
                            f"for a second, ...), e.g. --prompt \"ROMEO: I {st.sentinel(0)} "
                            f"thee\"")
        # the targets of a span-corrupted row start with the first gap's sentinel: forced here
        targets = self.decode_targets(params, list(prefix_ids) + prompt_ids, gaps[:1],
                                      int(options["max_new_tokens"]),
                                      temperature=float(options["temperature"]),
                                      top_k=int(options["top_k"] or 0), seed=int(options["seed"]))
        return span_display(self.tokenizer, prompt_ids, targets, self.sentinel_index)

    @functools.cached_property
    def sentinel_index(self) -> dict[int, int]:
        """Every sentinel the tokenizer holds: id -> its number (``<extra_id_N>``: N)."""
        return {self.tokenizer.token_id(s): n for n, s in enumerate(st.sentinels())
                if self.tokenizer.has_token(s)}

    def sample_options(self):
        s = self.config.sample
        return (sample_flags.prompt(s.prompt),
                sample_flags.max_new_tokens(s.max_new_tokens or self.targets_length),
                sample_flags.temperature(s.temperature), sample_flags.top_k(s.top_k),
                sample_flags.seed(0))

    def sample_command(self, ctx: EvalContext, options: dict) -> str:
        return self.span_fill_command(ctx.params, options)

    def evaluators(self):
        return [SampleFileEvaluator(self.sample_at_eval)]


def split_spans(target_ids: list[int], sentinel_index: dict[int, int]) -> dict[int, list[int]]:
    """The decoder's targets (``<extra_id_0> span <extra_id_1> span ...``) as {sentinel id:
    its span's ids}; tokens before the first sentinel belong to none and are dropped."""
    spans, current = {}, None
    for i in target_ids:
        if i in sentinel_index:
            current = spans.setdefault(i, [])
        elif current is not None:
            current.append(i)
    return spans


def span_display(tokenizer, prompt_ids: list[int], target_ids: list[int],
                 sentinel_index: dict[int, int]) -> str:
    """The prompt with each sentinel replaced by its span (decoded as one text, so subword
    pieces join), then one line per sentinel: its number and its span (quoted), or
    "(none generated)" where the decoder gave it no span (the text then has nothing there)."""
    spans = split_spans(target_ids, sentinel_index)
    filled = [t for i in prompt_ids for t in (spans.get(i, []) if i in sentinel_index else [i])]
    lines = ["extra_id  span"]
    for i in [i for i in prompt_ids if i in sentinel_index]:
        span = repr(tokenizer.decode(spans[i])) if i in spans else "(none generated)"
        lines.append(f"{sentinel_index[i]:>8}  {span}")
    return tokenizer.decode(filled) + "\n\n" + "\n".join(lines)
