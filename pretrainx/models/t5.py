"""T5 (Raffel et al. 2020): an encoder-decoder with shared token embeddings, RMSNorm, no biases,
relative position buckets, and the decoder attending to the encoder through cross-attention.

Both published versions are configs of the same module (``configs/t5/``):
  v1.0  ReLU MLP, output projection tied to the embeddings (scaled by d_model^-0.5)
  v1.1  gated-GELU MLP, separate output projection, per-head width independent of d_model

Parameter names, and their Hugging Face ``T5ForConditionalGeneration`` counterparts:

  token_embedder/embedding ('vocab','embed')   shared
  encoder/relpos/rel_embedding                 encoder.block.0.layer.0.SelfAttention.relative_attention_bias
  encoder/h_i/{ln_1, attn, ln_2, mlp}          encoder.block.i.layer.{0: layer_norm, SelfAttention; 1: ...}
  decoder/h_i/{ln_cross, cross_attn}           decoder.block.i.layer.1 (EncDecAttention)
  mlp/{fc, gate, proj}                         DenseReluDense.{wi | wi_0, wi_1, wo}
  {encoder,decoder}/ln_f                       {encoder,decoder}.final_layer_norm
  lm_head (v1.1)                               lm_head
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.models.attention import RelativePositionBias
from pretrainx.models.blocks import run_stack, stack
from pretrainx.models.transformer import (TransformerConfig, attention_mask,
                                          cross_attention_mask, embed, init_std, norm, normal_init)


class T5Stack(nn.Module):
    """The encoder (bidirectional) or the decoder (causal, with cross-attention) of T5: embeddings
    in, normalised hidden states out. decode=True (decoder only): a KV cache as in GPT."""
    config: TransformerConfig
    decoder: bool = False
    decode: bool = False

    @nn.compact
    def __call__(self, x_BxTxE, *, segment_ids=None, input_mask=None, encoded=None,
                 cross_mask=None, train: bool = False):
        cfg = self.config
        B, T, _ = x_BxTxE.shape
        start = 0
        if self.decode:
            is_initialized = self.has_variable("cache", "cache_index")
            index = self.variable("cache", "cache_index", lambda: jnp.array(0, jnp.int32))
            if is_initialized:
                start = index.value
                index.value = start + T
        query_pos_T = start + jnp.arange(T, dtype=jnp.int32)
        if self.decode:       # keys are the cache's slots; the cache builds the causal mask
            key_pos_S, mask = jnp.arange(cfg.max_len, dtype=jnp.int32), None
        else:
            key_pos_S = query_pos_T
            mask = attention_mask("causal" if self.decoder else "bidirectional", T,
                                  segment_ids=segment_ids, input_mask=input_mask)
        # Relative distances inside a packed example are the same counted from the row's start.
        bias = RelativePositionBias(cfg, bidirectional=not self.decoder, name="relpos")(
            query_pos_T, key_pos_S)
        positions_BxT = jnp.broadcast_to(query_pos_T, (B, T))
        x_BxTxE = nn.Dropout(cfg.dropout)(x_BxTxE, deterministic=not train)
        count = cfg.decoder_layers if self.decoder else cfg.num_layers
        blocks = stack(cfg, count, decode=self.decode, cross_attention=self.decoder)
        x_BxTxE = run_stack(blocks, x_BxTxE, positions_BxT, mask, train,
                            input_mask if self.decode else None, bias, encoded, cross_mask)
        x_BxTxE = norm(cfg, "ln_f")(x_BxTxE)
        return nn.Dropout(cfg.dropout)(x_BxTxE, deterministic=not train)


class T5(nn.Module):
    """``__call__(encoder_tokens, decoder_tokens)`` -> float32 logits B,T,V; ``encode`` and
    ``decode_logits`` separately for generation. Masks: ``encoder_mask`` (B,S) marks real encoder
    tokens; ``*_segment_ids`` keep packed examples apart in self- and cross-attention."""
    config: TransformerConfig
    decode: bool = False

    def setup(self):
        cfg = self.config
        self.token_embedder = embed(cfg, cfg.vocab_size, init_std(cfg, "embed"), ("vocab", "embed"))
        self.encoder = T5Stack(cfg)
        self.decoder = T5Stack(cfg, decoder=True, decode=self.decode)
        if not cfg.tie_embeddings:
            self.lm_head = nn.Dense(cfg.vocab_size, use_bias=False, dtype=cfg.compute_dtype,
                                    dot_general=cfg.dense_dot_general,
                                    kernel_init=normal_init(init_std(cfg, "head"),
                                                            ("embed", "vocab")))

    def encode(self, tokens_BxS, *, segment_ids=None, input_mask=None, train: bool = False):
        return self.encoder(self.token_embedder(tokens_BxS), segment_ids=segment_ids,
                            input_mask=input_mask, train=train)

    def decode_logits(self, decoder_tokens_BxT, encoded_BxSxE, *, encoder_mask=None,
                      encoder_segment_ids=None, decoder_segment_ids=None, train: bool = False):
        cfg = self.config
        cross_mask = cross_attention_mask(decoder_segment_ids, encoder_segment_ids, encoder_mask)
        x_BxTxE = self.decoder(self.token_embedder(decoder_tokens_BxT),
                               segment_ids=decoder_segment_ids, encoded=encoded_BxSxE,
                               cross_mask=cross_mask, train=train)
        if cfg.tie_embeddings:     # Mesh TF rescales before the tied projection (T5 v1.0)
            scale = cfg.embed_dim ** -0.5 if cfg.tied_output_scale else 1.0
            logits_BxTxV = self.token_embedder.attend(x_BxTxE * scale)
        else:
            logits_BxTxV = self.lm_head(x_BxTxE)
        return cfg.output_logits(logits_BxTxV)

    def __call__(self, encoder_tokens_BxS, decoder_tokens_BxT, *, encoder_mask=None,
                 encoder_segment_ids=None, decoder_segment_ids=None, train: bool = False):
        encoded = self.encode(encoder_tokens_BxS, segment_ids=encoder_segment_ids,
                              input_mask=encoder_mask, train=train)
        return self.decode_logits(decoder_tokens_BxT, encoded, encoder_mask=encoder_mask,
                                  encoder_segment_ids=encoder_segment_ids,
                                  decoder_segment_ids=decoder_segment_ids, train=train)


def init_params(config: TransformerConfig, rng, encoder_len: int = 8, decoder_len: int = 4):
    """T5's (boxed) parameters."""
    return T5(config).init({"params": rng}, jnp.zeros((1, encoder_len), jnp.int32),
                           jnp.zeros((1, decoder_len), jnp.int32))["params"]


@dataclasses.dataclass(frozen=True)
class T5Decoder:
    """The T5 decoder's KV cache behind ``pretrainx.models.decoding.Decoder``. Its "params" are
    ``{"params": ..., "encoded": B,S,E, "encoder_mask": B,S}`` (``encoded_params``): decoding
    conditions on an encoded input."""
    config: TransformerConfig

    @property
    def max_len(self) -> int:
        return self.config.max_len

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    def init_cache(self, params, batch_size: int):
        model = T5(self.config, decode=True)
        one = jnp.zeros((batch_size, 1), jnp.int32)
        abstract = jax.eval_shape(model.init, jax.random.key(0), one, one)
        return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), nn.unbox(abstract["cache"]))

    def step(self, params, cache, tokens_BxT, positions_BxT, input_mask_BxT):
        logits, mutated = T5(self.config, decode=True).apply(
            {"params": params["params"], "cache": cache}, tokens_BxT, params["encoded"],
            encoder_mask=params["encoder_mask"], method="decode_logits", mutable=["cache"])
        return logits, mutated["cache"]


def encoded_params(config: TransformerConfig, params, tokens_BxS, mask_BxS):
    """What :class:`T5Decoder` decodes with: the parameters and the encoded input."""
    encoded = T5(config).apply({"params": params}, jnp.asarray(tokens_BxS),
                               input_mask=jnp.asarray(mask_BxS), method="encode")
    return {"params": params, "encoded": encoded, "encoder_mask": jnp.asarray(mask_BxS, bool)}


def param_count(params) -> int:
    """Every parameter (boxed, unboxed or abstract), shared embeddings counted once."""
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(nn.unbox(params))))
