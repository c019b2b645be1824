"""Sequence classification on a pretrained network (fine-tuning through ``config.init_from``).

``model.arch``: "bert" — the pooled [CLS] output (tanh(dense(h[CLS])), the pooler new unless the
parent had one) — or "gpt" — the final hidden state of the last real token (a causal model has
read the whole row there). A new head, Dense(embed -> ``classify.num_classes``) with logical axes
("embed", "classes"), sits on it; the loss is the cross-entropy of the label, the metrics the
loss and accuracy over examples (their count the denominator).

Fine-tuning: ``init_from.workdir`` = the pretraining run, ``init_from.mapping = (("params",
"params/backbone"),)``; ``adapt_init_from`` drops the parent's arrays the backbone has no place
for (BERT's MLM head, GPT's output layer), so the trunk loads and the head starts fresh. Set
``data.tokenizer`` to the same workdir, so the ids are the ones the trunk learnt. Batches:
``tokens``, ``input_mask``, ``label`` (``data.kind = "speeches"``). ``classify.pooling = "mean"``
pools the mean final state of the real tokens instead (MLM pretraining never trains [CLS]: it
is special, never masked, so its state carries little until fine-tuning moves it).
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from pretrainx.data import special_tokens as st
from pretrainx.errors import UserError
from pretrainx.models import bert, gpt, transformer
from pretrainx.objectives import losses, settings
from pretrainx.objectives.base import DENOMINATOR, DataRequest, register
from pretrainx.objectives.text_lm import TextObjective

ARCHS = ("bert", "gpt")


class Classifier(nn.Module):
    config: transformer.TransformerConfig
    arch: str
    num_classes: int
    pooling: str = "default"

    @nn.compact
    def __call__(self, tokens_BxT, input_mask_BxT, *, train: bool = False):
        cfg = self.config
        if self.pooling == "mean":       # the mean final state of the real tokens (either arch)
            if self.arch == "bert":
                h_BxTxE = bert.Bert(cfg, name="backbone")(tokens_BxT, input_mask=input_mask_BxT,
                                                         train=train, output="features")
            else:
                h_BxTxE = gpt.GPT(cfg, name="backbone")(tokens_BxT, input_mask=input_mask_BxT,
                                                        train=train, features_only=True)
            m_BxTx1 = input_mask_BxT[..., None].astype(jnp.float32)
            pooled_BxE = (h_BxTxE * m_BxTx1).sum(1) / jnp.maximum(m_BxTx1.sum(1), 1.0)
        elif self.arch == "bert":
            pooled_BxE = bert.Bert(cfg, name="backbone")(tokens_BxT, input_mask=input_mask_BxT,
                                                        train=train, output="pooled")
        else:
            h_BxTxE = gpt.GPT(cfg, name="backbone")(tokens_BxT, input_mask=input_mask_BxT,
                                                    train=train, features_only=True)
            last_B = jnp.maximum(input_mask_BxT.sum(axis=1) - 1, 0)
            pooled_BxE = jnp.take_along_axis(h_BxTxE, last_B[:, None, None], axis=1)[:, 0]
        pooled_BxE = nn.Dropout(cfg.dropout)(pooled_BxE, deterministic=not train)
        head = nn.Dense(self.num_classes, dtype=jnp.float32,
                        kernel_init=nn.with_logical_partitioning(
                            nn.initializers.normal(0.02), ("embed", "classes")),
                        bias_init=nn.with_logical_partitioning(nn.initializers.zeros,
                                                               ("classes",)), name="head")
        return head(pooled_BxE.astype(jnp.float32))


@register("classify")
class Classify(TextObjective):
    batch_keys = ("tokens", "input_mask", "label")
    tokens_key = "tokens"

    def __init__(self, config, spec=None):
        super().__init__(config, spec)
        self.arch = config.model.arch
        if self.arch not in ARCHS:
            raise UserError(f"classify: config.model.arch must be one of {ARCHS}, "
                            f"got {self.arch!r}")
        self.num_classes = int(config.classify.num_classes)
        pooling = config.classify.pooling
        self.model = Classifier(self.model_config, self.arch, self.num_classes, pooling)
        self.seq_len = int(config.data.seq_len)
        classes = self.spec.info.get("num_classes", 0)
        if classes > self.num_classes:   # a label past the head would be scored as another class
            raise settings.SettingError(f"config.classify.num_classes is {self.num_classes} but "
                                        f"the data has {classes} classes: set "
                                        f"--config.classify.num_classes={classes}")

    @classmethod
    def check_config(cls, config):
        settings.integer(config, "classify.num_classes", 2)
        settings.choice(config, "classify.pooling", ("default", "mean"))

    @classmethod
    def data_request(cls, config):
        # the order the mlm objective asks them in, so a char vocabulary gets the same ids
        return DataRequest(seq_len=int(config.data.seq_len), fields=None,
                           special_tokens=(st.PAD, st.CLS, st.SEP, st.MASK))

    def init(self, rng):
        tokens = jnp.zeros((1, self.seq_len), jnp.int32)
        return self.model.init({"params": rng}, tokens, jnp.ones_like(tokens))["params"]

    def logits(self, params, batch, rng, *, train: bool):
        return self.model.apply({"params": params}, batch["tokens"], batch["input_mask"],
                                train=train, rngs={"dropout": rng} if train else None)

    def loss_fn(self, params, batch, rng, *, train, frozen, ctx=None):
        logits_BxC = self.logits(params, batch, rng, train=train)
        loss, _, acc, count = losses.cross_entropy(logits_BxC, batch["label"])
        return loss, {"accuracy": acc, DENOMINATOR: count}

    def adapt_init_from(self, source, target):
        """Keep the parent's parameters the backbone has a place for (drop its LM head)."""
        params = dict(source.get("params", {}))
        place = target.get("params", {}).get("backbone", {})
        dropped = sorted(k for k in params if k not in place)
        kept = {k: v for k, v in params.items() if k in place}
        if dropped:
            import logging
            logging.getLogger(__name__).info("classify: not loaded from the parent: %s", dropped)
        return {**source, "params": kept}
