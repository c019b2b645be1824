"""T5's span-corruption pretraining (Raffel et al. 2020) on the T5 encoder-decoder
(``models/t5.py``); the corruption itself is ``data/spans.py``.

Config: ``data.seq_len`` is the *encoder input* length (T5: 512); the objective asks the data for
the raw length that fills it exactly (568 at the defaults) and the targets have a fixed length
(114). ``config.span``: ``noise_density`` (0.15), ``mean_span_length`` (3.0).

Batch (after ``transform``): ``inputs`` (B, I) the corrupted text ending in EOS, ``targets``
(B, T) sentinel + span for each span then EOS, ``decoder_inputs`` the targets shifted right
behind the pad id (T5 starts decoding from it), ``weights`` ones (every target counts).

Metrics: ``loss``/``nll`` per target token (their count the denominator), ``accuracy``.
``pretrainx sample --prompt "To be or <extra_id_0> to be"`` fills the spans greedily.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.models import decoding

from pretrainx.objectives import losses
from pretrainx.data import spans
from pretrainx.data import special_tokens as st
from pretrainx.models import t5, transformer
from pretrainx.objectives import text_common
from pretrainx.objectives.base import DENOMINATOR, EvalContext, Objective, register


class EncoderDecoderObjective(Objective):
    """What every T5 objective shares: the model, init at (inputs, targets) lengths, the
    teacher-forced loss on weighted targets, FLOPs and span filling as the sampler."""
    batch_keys = ("inputs", "targets", "decoder_inputs", "weights")
    tokens_key = "inputs"

    def __init__(self, config):
        super().__init__(config)
        self.model_config = transformer.TransformerConfig.from_config(config.model)
        self.model = t5.T5(self.model_config)
        self.label_smoothing = float(config.get("loss", {}).get("label_smoothing", 0.0))
        if config.data.get("packing", "stream") != "stream":
            raise ValueError(f"{type(self).__name__} corrupts fixed raw rows: set "
                             f"config.data.packing='stream'")
        self.inputs_length = int(config.data.seq_len)
        self.targets_length = self.inputs_length      # subclasses set theirs

    def bind_data(self, dataset) -> None:
        super().bind_data(dataset)
        tok = dataset.tokenizer
        text_common.check_vocab(tok, self.model_config.vocab_size)
        self.pad_id = tok.token_id(st.PAD)
        self.eos_id = tok.token_id(st.EOS)

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

    def shift(self, targets_BxT):
        return np.concatenate([np.full((targets_BxT.shape[0], 1), self.pad_id, np.int32),
                               targets_BxT[:, :-1]], axis=1).astype(np.int32)

    def flops_per_batch(self, batch):
        """6N per encoder token and per decoder token (attention's quadratic term left out)."""
        if not hasattr(self, "_params_n"):
            import flax.linen as nn
            abstract = nn.unbox(jax.eval_shape(self.init, jax.random.PRNGKey(0)))
            self._params_n = t5.param_count(abstract)
        return 6.0 * self._params_n * (batch["inputs"].size + batch["targets"].size)

    def fill_spans(self, params, prompt: str, max_new_tokens: int, prefix_ids=()) -> str:
        """Greedy decoding of the targets for ``prompt`` (sentinels in it mark the gaps)."""
        ids = list(prefix_ids) + self.tokenizer.encode(prompt) + [self.eos_id]
        if len(ids) > self.inputs_length:
            raise ValueError(f"the prompt has {len(ids)} tokens; the encoder reads "
                             f"{self.inputs_length}")
        enc = np.asarray([ids], np.int32)
        encoded = t5.encoded_params(self.model_config, params, enc, np.ones_like(enc, bool))
        n = min(max_new_tokens, self.model_config.max_len - 1)
        out = decoding.generate(t5.T5Decoder(self.model_config), encoded,
                                np.asarray([[self.pad_id]], np.int32), n, rng=jax.random.key(0),
                                temperature=0.0, eos_id=self.eos_id,
                                vocab_size=min(self.tokenizer.vocab_size,
                                               self.model_config.vocab_size))
        gen = [int(i) for i in out[0, 1:]]
        if self.eos_id in gen:
            gen = gen[:gen.index(self.eos_id)]
        return self.tokenizer.decode(gen)

    def sample_command(self, ctx: EvalContext, options: dict) -> str:
        prompt = options.get("prompt") or self.config.sample.prompt
        n = options.get("max_new_tokens") or self.config.sample.max_new_tokens or self.targets_length
        return self.fill_spans(ctx.params, prompt, int(n))


@register("span_corruption")
class SpanCorruption(EncoderDecoderObjective):

    def __init__(self, config):
        super().__init__(config)
        s = config.get("span", {})
        self.density = float(s.get("noise_density", 0.15))
        self.mean_span = float(s.get("mean_span_length", 3.0))
        if not 0.0 < self.density < 1.0 or self.mean_span < 1.0:
            raise ValueError(f"config.span: noise_density in (0, 1) and mean_span_length >= 1, "
                             f"got {self.density}, {self.mean_span}")
        self.raw_length, self.targets_length = spans.raw_length_for(
            self.inputs_length, self.density, self.mean_span)
        self.num_spans = spans.span_counts(self.raw_length, self.density, self.mean_span)[1]

    def data_request(self):
        # <extra_id_0> asked last, so a char/byte vocabulary gets it at the top and the next
        # sentinels descending from there, as T5's vocabulary has them
        sentinels = [st.sentinel(i) for i in reversed(range(self.num_spans))]
        return text_common.raw_request(self.config, self.raw_length,
                                       (st.PAD, st.EOS, *sentinels))

    def bind_data(self, dataset) -> None:
        super().bind_data(dataset)
        self.sentinel_ids = st.sentinel_ids(dataset.tokenizer, self.num_spans)

    def transform(self, batch, rng, *, ctx):
        tokens = np.asarray(batch["tokens"])
        inputs, targets, _ = spans.span_corrupt(ctx.draws(rng), tokens, self.sentinel_ids,
                                                self.eos_id, self.density, self.mean_span)
        return {"inputs": inputs, "targets": targets, "decoder_inputs": self.shift(targets),
                "weights": np.ones(targets.shape, np.float32)}
