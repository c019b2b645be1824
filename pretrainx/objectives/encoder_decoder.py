"""The base of the T5 objectives (``span_corruption``, ``ul2``): the encoder-decoder model, its
init at the (inputs, targets) lengths, the teacher-forced loss on weighted targets, decoder
inputs shifted right behind the pad id, FLOPs, and span filling as the sampler.

Config: ``data.seq_len`` is the encoder input length; ``data.packing`` must be "stream" (the
corruption reads fixed raw rows); ``sample.{prompt, max_new_tokens}``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.data import special_tokens as st
from pretrainx.errors import UserError
from pretrainx.models import decoding, t5
from pretrainx.objectives import losses, sample_flags
from pretrainx.objectives.base import DENOMINATOR, DataSpec, EvalContext
from pretrainx.objectives.text_lm import TextObjective


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

    def fill_spans(self, params, prompt: str, max_new_tokens: int, prefix_ids=()) -> str:
        """Greedy decoding of the targets for ``prompt`` (sentinels in it mark the gaps)."""
        ids = list(prefix_ids) + self.tokenizer.encode(prompt) + [self.eos_id]
        if len(ids) > self.inputs_length:
            raise UserError(f"the prompt has {len(ids)} tokens; the encoder reads "
                            f"{self.inputs_length}")
        enc = np.asarray([ids], np.int32)
        encoded = t5.encoded_params(self.model_config, params, enc, np.ones_like(enc, bool))
        n = min(max_new_tokens, self.model_config.max_len - 1)
        out = decoding.continue_prompt(t5.T5Decoder(self.model_config), encoded,
                                       np.asarray([[self.pad_id]], np.int32), n,
                                       rng=jax.random.key(0), temperature=0.0, eos_id=self.eos_id,
                                       vocab_size=min(self.tokenizer.vocab_size,
                                                      self.model_config.vocab_size))
        gen = [int(i) for i in out[0, 1:]]
        if self.eos_id in gen:
            gen = gen[:gen.index(self.eos_id)]
        return self.tokenizer.decode(gen)

    def sample_options(self):
        s = self.config.sample
        return (sample_flags.prompt(s.prompt),
                sample_flags.max_new_tokens(s.max_new_tokens or self.targets_length))

    def sample_command(self, ctx: EvalContext, options: dict) -> str:
        return self.fill_spans(ctx.params, options["prompt"], int(options["max_new_tokens"]))
