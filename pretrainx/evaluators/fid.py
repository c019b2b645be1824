"""Fréchet distance between feature Gaussians (FID), with a pinned, cached evaluation protocol.

  FD(N(mu1, S1), N(mu2, S2)) = |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr (S1^1/2 S2 S1^1/2)^1/2

The last trace is computed from eigenvalues of the symmetric PSD matrix S1^1/2 S2 S1^1/2 (similar
to S1 S2, so the same trace of the square root), which avoids sqrtm's complex round-off.

Features: Inception-v3 weights are not available offline, so the default extractor is a small CNN
classifier trained once per data set (fixed seed and steps) and cached on disk, with its
penultimate-layer activations as features; its held-out accuracy is stored beside it. Numbers are
comparable between runs that share the extractor, not with published Inception FIDs. Any other
extractor plugs in with ``register_extractor``.

Protocol (``FidProtocol``): ``num_samples`` generated images from a fixed seed, against the
statistics of ``num_reference`` training images picked with that seed; the real-data floor is the
FID of ``num_samples`` held-out images against the same reference.

``reference_split="heldout"`` swaps the two splits' roles: the classifier and the reference come
from the held-out images and the floor is the generator's own training images. For data sets small
enough to memorise (the 8x8 digits): with the default roles a generator that copies its training
images lands below the floor (they are the reference, and the classifier's features were fitted to
them); swapped, copying the training set scores the floor, the best a model of that set can do.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Protocol

import numpy as np

from pretrainx.data.images import ImageArrays, to_uint8, to_unit_range
from pretrainx.errors import UserError
from pretrainx.evaluators.cache import computed_once


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, np.float64)
    return features.mean(0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    eigvals, eigvecs = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigvecs * np.sqrt(np.clip(eigvals, 0, None))) @ eigvecs.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    root1 = _psd_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    value = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
    return float(max(value, 0.0))


# ---- feature extractors -----------------------------------------------------------------------

class FeatureExtractor(Protocol):
    name: str      # part of every cache key: change it when the features change

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """float images in [-1, 1], (N, H, W, C) -> features (N, D)."""


_EXTRACTORS: dict[str, Callable[..., FeatureExtractor]] = {}


def register_extractor(name: str):
    """``factory(arrays: ImageArrays, cache_dir: str, protocol: FidProtocol) -> FeatureExtractor``."""
    def wrap(factory):
        _EXTRACTORS[name] = factory
        return factory
    return wrap


def make_extractor(arrays: ImageArrays, cache_dir: str, protocol: "FidProtocol"):
    if protocol.extractor not in _EXTRACTORS:
        raise UserError(f"unknown FID feature extractor {protocol.extractor!r}; registered: "
                        f"{sorted(_EXTRACTORS)}")
    return _EXTRACTORS[protocol.extractor](arrays, cache_dir, protocol)


@register_extractor("inception_v3")
def _inception_unavailable(arrays, cache_dir, protocol):
    raise FileNotFoundError(
        "no Inception-v3 weights ship with pretrainx (they cannot be downloaded here): register "
        "an extractor that loads them, e.g. @pretrainx.fid.register_extractor('inception_v3'), "
        "returning an object with .name and __call__(images in [-1, 1]) -> (N, 2048) pool3 "
        "features; or use the default 'classifier_fast'")


def _classifier_extractor(arrays, cache_dir, protocol):
    """The CNN feature classifier named by ``protocol.extractor`` (evaluators/fid_classifier.py:
    "classifier_fast", the default, or the pre-#25 "classifier")."""
    from pretrainx.evaluators import fid_classifier    # lazy: only this extractor needs flax/optax
    return fid_classifier.load_or_train(arrays, cache_dir, protocol.seed,
                                        protocol.classifier_steps, protocol.extractor)


register_extractor("classifier_fast")(_classifier_extractor)
register_extractor("classifier")(_classifier_extractor)


def default_cache_dir() -> str:
    return os.environ.get("PRETRAINX_FID_CACHE",
                          os.path.join(os.path.expanduser("~"), ".cache", "pretrainx", "fid"))


# ---- the protocol -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class FidProtocol:
    num_samples: int = 10000        # generated images, and held-out images for the floor
    num_reference: int = 10000      # training images for the reference Gaussian (0: all)
    seed: int = 0                   # picks the reference images and seeds the generator
    extractor: str = "classifier_fast"   # or the pre-#25 "classifier" (evaluators/fid_classifier.py)
    classifier_steps: int = 400     # training steps of the classifier extractors
    reference_split: str = "train"  # "train" | "heldout" (see the module docstring)


def extract(extractor: FeatureExtractor, images_uint8_or_float, batch_size: int = 500):
    images = images_uint8_or_float
    chunks = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        if chunk.dtype == np.uint8:
            chunk = to_unit_range(chunk)
        chunks.append(np.asarray(extractor(chunk)))
    return np.concatenate(chunks)


class FidScorer:
    """Reference statistics (cached on disk) and FID of any image set against them."""

    def __init__(self, arrays: ImageArrays, protocol: FidProtocol, cache_dir: str = ""):
        if protocol.reference_split not in ("train", "heldout"):
            raise UserError(f"eval.fid_reference_split must be 'train' or 'heldout', got "
                            f"{protocol.reference_split!r}")
        if protocol.reference_split == "heldout":   # the held-out images play "train"
            arrays = dataclasses.replace(
                arrays, name=f"{arrays.name}-heldout-reference",
                train_images=arrays.heldout_images, train_labels=arrays.heldout_labels,
                heldout_images=arrays.train_images, heldout_labels=arrays.train_labels)
        self.arrays, self.protocol = arrays, protocol
        self.cache_dir = os.path.join(cache_dir or default_cache_dir(), arrays.name)
        os.makedirs(self.cache_dir, exist_ok=True)
        self.extractor = make_extractor(arrays, self.cache_dir, protocol)
        self.reference = self._cached_stats("reference", self._reference_images)

    def _reference_images(self):
        n = self.protocol.num_reference or len(self.arrays.train_images)
        rows = np.random.default_rng(self.protocol.seed).permutation(
            len(self.arrays.train_images))[:n]
        return self.arrays.train_images[np.sort(rows)]

    def _cached_stats(self, what: str, images_fn):
        p = self.protocol
        path = os.path.join(self.cache_dir, f"{what}_{self.extractor.name}_n{p.num_reference}"
                                            f"_s{p.num_samples}_seed{p.seed}.npz")
        def save(tmp, stats):
            with open(tmp, "wb") as f:
                np.savez(f, mu=stats[0], sigma=stats[1])

        def load(file):
            with np.load(file) as f:
                return f["mu"], f["sigma"]
        return computed_once(path, lambda: gaussian_stats(extract(self.extractor, images_fn())),
                             save, load)

    def score(self, images: np.ndarray) -> float:
        """FID of images (uint8, or float in [-1, 1]) against the reference. Float images are
        quantised to uint8 first, as the real images are: the features then see the same kind
        of pixels (a float image holds detail no real one has)."""
        if images.dtype != np.uint8:
            images = to_uint8(images)
        return frechet_distance(*gaussian_stats(extract(self.extractor, images)), *self.reference)

    def real_floor(self) -> float:
        """FID of held-out real images against the reference: the best a generator can expect."""
        n = self.protocol.num_samples
        if len(self.arrays.heldout_images) < n:
            print(f"fid: only {len(self.arrays.heldout_images)} held-out images for the floor "
                  f"(protocol asks {n}); the floor is biased upwards")
        stats = self._cached_stats("heldout", lambda: self.arrays.heldout_images[:n])
        return frechet_distance(*stats, *self.reference)


# ---- evaluators the image objectives hand to the runner -----------------------------------------

def save_image_grid(images: np.ndarray, path: str, columns: int = 0) -> str:
    """float images in [-1, 1], (N, H, W, C) -> one PNG grid with a 2-pixel gap."""
    from PIL import Image
    from pretrainx.data.images import to_uint8
    images = to_uint8(images)
    n, h, w, c = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    grid = np.full((rows * (h + 2) + 2, columns * (w + 2) + 2, c), 255, np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        grid[2 + r * (h + 2):2 + r * (h + 2) + h, 2 + col * (w + 2):2 + col * (w + 2) + w] = image
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(grid.squeeze(-1) if c == 1 else grid).save(path)
    return path


# generate(params, rng, num, *, sampler=None, steps=None) -> float images in [-1, 1]
Generate = Callable[..., np.ndarray]


class FidEvaluator:
    """Yields ("fid", value) for the first (sampler, steps) pair, ("fid/SAMPLER_STEPS", value) for
    the others, and once per process ("fid_real_floor", value).

    extra_at="final" scores the samplers after the first only at the run's last eval (and in
    `pretrainx eval`): a 1000-step ancestral FID costs as much as thousands of training steps, so
    the curve during training follows the first sampler alone."""
    name = "fid"

    def __init__(self, generate: Generate, data_config, protocol: FidProtocol,
                 samplers: list[tuple[str, int]], cache_dir: str = "", extra_at: str = "final"):
        if extra_at not in ("final", "every"):
            raise UserError(f"eval.fid_extra_at must be 'final' or 'every', got {extra_at!r}")
        self.generate, self.data_config, self.protocol = generate, data_config, protocol
        self.samplers, self.cache_dir, self.extra_at = samplers, cache_dir, extra_at
        self._scorer = None

    def __call__(self, ctx):
        import jax
        from pretrainx.data.images import load_image_arrays
        results = []
        if self._scorer is None:
            self._scorer = FidScorer(load_image_arrays(self.data_config), self.protocol,
                                     self.cache_dir)
            results.append(("fid_real_floor", self._scorer.real_floor()))
        samplers = self.samplers if ctx.final or self.extra_at == "every" else self.samplers[:1]
        for i, (sampler, steps) in enumerate(samplers):
            # A fixed generator seed (not ctx.rng): the protocol is the same at every eval.
            images = self.generate(ctx.params, jax.random.key(self.protocol.seed),
                                   self.protocol.num_samples, sampler=sampler, steps=steps)
            results.append(("fid" if i == 0 else f"fid/{sampler}_{steps}",
                            self._scorer.score(images)))
        return results


class SampleGridEvaluator:
    """Writes ``workdir/samples/step_XXXXXX.png`` (fixed seed: the grids of a run are comparable);
    yields no metrics."""
    name = "samples"

    def __init__(self, generate: Generate, num: int = 64, seed: int = 0):
        self.generate, self.num, self.seed = generate, num, seed

    def __call__(self, ctx):
        import jax
        images = self.generate(ctx.params, jax.random.key(self.seed), self.num)
        if ctx.samples_dir and jax.process_index() == 0:   # every process samples; one writes
            save_image_grid(images, ctx.sample_path(".png"))
        return []
