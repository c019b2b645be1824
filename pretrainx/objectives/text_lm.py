"""The base of the transformer text objectives, and the causal policy they compose.

``TextObjective`` holds what every text objective on a ``TransformerConfig`` shares: the model
config, the one vocabulary check (the tokenizer of the spec must fit ``model.vocab_size``), and
the one lazy count of parameter shapes that FLOPs estimates read.

``CausalPolicy`` is a GPT with the run's tokenizer and ``config.sample``: it continues a prompt
(``continue_text``), declares and runs ``pretrainx sample`` for a causal LM, and makes the text
sample of each eval. ``SampleFileEvaluator`` writes every text objective's eval sample to
``samples/`` (a continuation, filled masks, filled spans). ``clm`` (and its variants) and ``dpo`` each hold one, so DPO samples as a
pretraining run does without being a kind of ``clm``.
"""
from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.errors import UserError
from pretrainx.models import decoding, gpt, transformer
from pretrainx.objectives import sample_flags
from pretrainx.objectives.base import DataSpec, EvalContext, Objective

LN2 = math.log(2.0)


class TextObjective(Objective):
    """A text objective on a transformer: model config, vocabulary check, parameter shapes."""

    def __init__(self, config, spec: DataSpec | None = None):
        super().__init__(config, spec)
        self.model_config = transformer.TransformerConfig.from_config(config.model)
        self.spec.check_vocab(self.model_config.vocab_size)

    def with_bits_per_byte(self, metrics: dict) -> dict:
        """``metrics`` with ``bpb``, bits per UTF-8 byte of the validation text: the pooled NLL per
        predicted token (nats) / ln 2 x the validation split's tokens / its bytes (``val_tokens``,
        ``val_bytes`` of the data set's info), i.e. the total bits over the text / its bytes. Runs
        with different tokenizers compare on it. Pooled over all validation batches by their
        token counts before the conversion, never averaged per batch; training metrics use the
        validation ratio, an approximation.

        What it means depends on what the objective predicts: for a causal LM, the code length of
        the validation text (its document separators included) per byte, as papers report; for
        the objectives that predict only some tokens (a prefix LM's suffixes, MLM's masked tokens,
        T5 / UL2 spans and their sentinels) it is their per-target-token NLL on the same scale:
        the bits per byte the text would cost if every token were predicted as well as their
        targets are. It ranks runs of one objective across tokenizers, not a masked model (which
        sees both sides of a token) against a causal one."""
        text_bytes, tokens = self.spec.info.get("val_bytes"), self.spec.info.get("val_tokens")
        if not (text_bytes and tokens and "nll" in metrics):
            return metrics
        return {**metrics, "bpb": metrics["nll"] / LN2 * (tokens / text_bytes)}

    def sample_at_eval(self, ctx: EvalContext) -> str:
        """The eval's text sample (``SampleFileEvaluator``): ``pretrainx sample`` with its
        default flags, i.e. the run's ``config.sample``, seeded by the step."""
        options = {o.name: o.default for o in self.sample_options()}
        return self.sample_command(ctx, {**options, "seed": ctx.step})

    @functools.cached_property
    def param_shapes(self):
        """``init``'s parameters as unboxed shapes, computed once (for FLOPs counts)."""
        return nn.unbox(jax.eval_shape(self.init, jax.random.PRNGKey(0)))

    def flops_per_token(self, seq_len: int | None = None) -> float:
        """nanoGPT's 6N + 12·L·H·Q·T, N without position tables, T = ``data.seq_len`` unless
        given; the same estimate for encoders."""
        n = gpt.param_count(self.param_shapes, non_embedding=True)
        seq_len = int(self.config.data.seq_len) if seq_len is None else seq_len
        return float(gpt.flops_per_token(self.model_config, n, seq_len))


class CausalPolicy:
    """A GPT that continues text: the sampler of ``clm`` and ``dpo``."""

    def __init__(self, model_config: transformer.TransformerConfig, tokenizer, sample_config):
        self.model_config = model_config
        self.model = gpt.GPT(model_config)
        self.tokenizer = tokenizer
        self.sample_config = sample_config

    def init(self, rng, seq_len: int):
        tokens = jnp.zeros((1, seq_len), jnp.int32)
        return self.model.init({"params": rng}, tokens, train=False)["params"]

    def continue_text(self, params, prompt: str, *, max_new_tokens: int, temperature: float,
                      top_k: int | None, seed: int) -> str:
        """The prompt and ``max_new_tokens`` more tokens sampled from the model, as text."""
        if self.tokenizer is None:
            raise UserError("no tokenizer: sampling needs the run's tokenizer.json")
        ids = self.tokenizer.encode(prompt) or [0]
        vocab = min(self.tokenizer.vocab_size, self.model_config.vocab_size)
        out = decoding.continue_prompt(gpt.GPTDecoder(self.model_config), params,
                                       np.asarray(ids, np.int32), max_new_tokens,
                                       rng=jax.random.PRNGKey(seed), temperature=temperature,
                                       top_k=min(top_k, vocab) if top_k else None,
                                       vocab_size=vocab)
        return self.tokenizer.decode(np.asarray(out)[0].tolist())

    def sample_options(self):
        s = self.sample_config
        return (sample_flags.prompt(s.prompt), sample_flags.max_new_tokens(s.max_new_tokens),
                sample_flags.temperature(s.temperature), sample_flags.top_k(s.top_k),
                sample_flags.seed(0))

    def sample_command(self, params, options: dict) -> str:
        """A continuation of ``--prompt``, as long as asked: past the context the model sees its
        last ``max_len`` tokens (``models/decoding.py``'s sliding window)."""
        return self.continue_text(params, options["prompt"],
                                  max_new_tokens=options["max_new_tokens"],
                                  temperature=options["temperature"], top_k=options["top_k"],
                                  seed=options["seed"])

    def eval_sample(self, ctx: EvalContext) -> str:
        """The eval's sample: ``config.sample``'s prompt (its last half-context at most, so a
        prompt of any length leaves room) continued within the context, seeded by the step."""
        s, tokenizer, max_len = self.sample_config, self.tokenizer, self.model_config.max_len
        prompt = tokenizer.decode(tokenizer.encode(s.prompt)[-(max_len // 2):])
        n = min(int(s.max_new_tokens), max_len - max(len(tokenizer.encode(prompt)), 1))
        return self.continue_text(ctx.params, prompt, max_new_tokens=n,
                                  temperature=float(s.temperature), top_k=int(s.top_k),
                                  seed=ctx.step)


class SampleFileEvaluator:
    """Writes a text sample to ``workdir/samples/step_N.txt`` at each eval: a look, not a metric.
    ``make_text(ctx)`` makes it (a continuation, a filled mask, filled spans): every text
    objective writes its samples through this one evaluator."""
    name = "text_sample"

    def __init__(self, make_text):
        self.make_text = make_text

    def __call__(self, ctx: EvalContext):
        text = self.make_text(ctx)
        if ctx.samples_dir and jax.process_index() == 0:
            with open(ctx.sample_path(".txt"), "w") as f:
                f.write(text)
        return []


class TextSampleEvaluator(SampleFileEvaluator):
    """The causal LM's eval sample: ``config.sample``'s continuation, seeded by the step."""

    def __init__(self, policy: CausalPolicy):
        super().__init__(policy.eval_sample)
        self.policy = policy
