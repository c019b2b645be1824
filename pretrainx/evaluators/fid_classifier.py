"""The default FID feature extractor: a small CNN classifier trained once per data set, cached.

Trained with a fixed seed and step count on the training split, so every run on a machine (and
every machine, up to floating point) gets the same features; the held-out accuracy is printed and
written to ``classifier_<tag>.json`` as a check that the features mean something. Features: the
128-wide penultimate layer. A progress bar (stderr) shows the training.

Two trainings of one network (``eval.fid_extractor``); FIDs are comparable only under one:
  "classifier_fast"   the default since #25: 400 steps of 64 images (``eval.fid_classifier_steps``),
                      7.5x fewer images than before, about 2-3 minutes on a 2-core CPU and
                      >= 98 % held-out accuracy on MNIST-like digits (experiments/first_hour.md)
  "classifier"        the tables recorded before #25: steps of 128 images (1,500 steps on
                      Fashion-MNIST: ~17 minutes on 2 cores); its cache files keep their old names
"""
from __future__ import annotations

import json
import os
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization
from tqdm.auto import tqdm

from pretrainx.data.images import ImageArrays, to_unit_range
from pretrainx.evaluators.cache import atomic_write, computed_once

TRAIN_STEPS = 400
FEATURE_DIM = 128
#: images per training step, by ``eval.fid_extractor`` name: the one difference of the two
BATCH_SIZES = {"classifier_fast": 64, "classifier": 128}

class FeatureCNN(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x):
        for width, stride in ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1)):
            x = nn.relu(nn.Conv(width, (3, 3), strides=(stride, stride))(x))
        features = nn.relu(nn.Dense(FEATURE_DIM)(x.mean(axis=(1, 2))))
        return features, nn.Dense(self.num_classes)(features)


class ClassifierExtractor:
    CHUNK = 500     # every call runs in padded chunks of this size: one compile per image shape

    def __init__(self, model, params, tag):
        self.name = f"classifier-{tag}"
        self._forward = jax.jit(lambda p, x: model.apply({"params": p}, x))
        self.params = params

    def features_and_logits(self, images):
        images = np.asarray(images, np.float32)
        features, logits = [], []
        for start in range(0, len(images), self.CHUNK):
            chunk = images[start:start + self.CHUNK]
            padded = np.pad(chunk, ((0, self.CHUNK - len(chunk)),) + ((0, 0),) * (chunk.ndim - 1))
            f, l = self._forward(self.params, padded)
            features.append(np.asarray(f)[:len(chunk)])
            logits.append(np.asarray(l)[:len(chunk)])
        return np.concatenate(features), np.concatenate(logits)

    def __call__(self, images):
        return self.features_and_logits(images)[0]


def numpy_init(model, image_shape, seed: int):
    """LeCun-normal kernels and zero biases from numpy's generator: the same bits on every
    backend (and no per-parameter threefry compile, which costs seconds on CPU)."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, *image_shape))))
    rng = np.random.default_rng([seed, 7])

    def draw(leaf):
        if len(leaf.shape) == 1:
            return jnp.zeros(leaf.shape, jnp.float32)
        fan_in = int(np.prod(leaf.shape[:-1]))
        return jnp.asarray(rng.standard_normal(leaf.shape) / np.sqrt(fan_in), jnp.float32)
    return jax.tree.map(draw, shapes["params"])


def train_classifier(arrays: ImageArrays, seed: int, steps: int = TRAIN_STEPS,
                     network: str = "classifier_fast"):
    model = FeatureCNN(len(arrays.class_names))
    params = numpy_init(model, arrays.train_images.shape[1:], seed)
    tx = optax.adam(optax.cosine_decay_schedule(2e-3, steps))
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, images, labels):
        def loss_fn(p):
            logits = model.apply({"params": p}, images)[1]
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    np_rng = np.random.default_rng(seed)
    # the first FID on a data set waits for this: show it (stderr, like the training bar)
    with tqdm(total=steps, unit="step", desc=f"fid: {network} on {arrays.name}",
              dynamic_ncols=True, mininterval=1.0) as bar:
        for i in range(steps):
            rows = np_rng.integers(0, len(arrays.train_images), BATCH_SIZES[network])
            params, opt_state, loss = step(params, opt_state,
                                           to_unit_range(arrays.train_images[rows]),
                                           arrays.train_labels[rows])
            if i % 50 == 0 or i == steps - 1:
                bar.set_postfix(loss=f"{float(loss):.3f}", refresh=False)
            bar.update()
    return model, params


def cache_tag(arrays: ImageArrays, seed: int, steps: int, network: str) -> str:
    """The cache key: image shape, seed, steps and network ("classifier" keeps the pre-#25
    names, so its cached files stay valid)."""
    shape = "x".join(str(d) for d in arrays.train_images.shape[1:])
    suffix = "" if network == "classifier" else f"-{network}"
    return f"{shape}-seed{seed}-steps{steps}{suffix}"


def load_or_train(arrays: ImageArrays, cache_dir: str, seed: int = 0, steps: int = TRAIN_STEPS,
                  network: str = "classifier_fast") -> ClassifierExtractor:
    tag = cache_tag(arrays, seed, steps, network)
    path = os.path.join(cache_dir, f"classifier_{tag}.msgpack")
    model = FeatureCNN(len(arrays.class_names))
    template = jax.eval_shape(lambda: model.init(
        jax.random.key(0), jnp.zeros((1, *arrays.train_images.shape[1:])))["params"])

    def train():
        start = time.time()
        params = train_classifier(arrays, seed, steps, network)[1]
        accuracy = heldout_accuracy(ClassifierExtractor(model, params, tag), arrays)
        os.makedirs(cache_dir, exist_ok=True)
        report = json.dumps({"classifier": tag, "heldout_accuracy": accuracy,
                             "train_seconds": round(time.time() - start, 1)})
        atomic_write(os.path.join(cache_dir, f"classifier_{tag}.json"),
                     lambda tmp: _write_text(tmp, report))
        print(f"fid: trained the {arrays.name} feature classifier ({tag}) in "
              f"{time.time() - start:.0f}s, held-out accuracy {accuracy:.4f} on "
              f"{len(arrays.heldout_labels)} images; cached at {path}", file=sys.stderr)
        return params

    def save(tmp, params):
        with open(tmp, "wb") as f:
            f.write(serialization.to_bytes(params))

    def load(file):
        with open(file, "rb") as f:
            return serialization.from_bytes(template, f.read())
    # One process trains and writes it; the others wait and read the file.
    return ClassifierExtractor(model, computed_once(path, train, save, load), tag)


def _write_text(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def heldout_accuracy(extractor: ClassifierExtractor, arrays: ImageArrays) -> float:
    logits = extractor.features_and_logits(to_unit_range(arrays.heldout_images))[1]
    return float((logits.argmax(-1) == arrays.heldout_labels).mean())
