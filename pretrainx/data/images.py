"""Image data sets for diffusion and flow models: batches {"image": (B,H,W,C) float32 in [-1, 1],
"label": (B,) int32}.

Kinds (``config.data.kind``):
  "idx"           MNIST-format IDX files, gzipped or not (MNIST, Fashion-MNIST): ``data.path`` is
                  the folder with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]; held out: t10k.
  "digits"        scikit-learn's bundled 8x8 digits (values 0..16); a fixed held-out fraction.
  "image_archive" ``data.path``: a folder of class folders or of tar/tar.gz archives of PNG/JPEG
                  files; the class is the file's parent folder (else the archive's name after its
                  last '-': test-cat.tar.gz -> "cat"); a fixed held-out fraction.
  "tfds_images"   a TFDS image data set read with ``tfds.data_source(download=False)`` (e.g.
                  "cifar10"); held out: ``data.heldout_split``.

Every kind loads to uint8 arrays once (``load_image_arrays``, cached per process), optionally pads
(``data.pad`` pixels of background each side) and resizes (``data.image_size``). The held-out split
never depends on the run's seed, so FID references and floors are the same for every run.
"""
from __future__ import annotations

import dataclasses
import gzip
import io
import json
import logging
import os
import tarfile

import numpy as np

from pretrainx.data import rng as streams
from pretrainx.data.base import Dataset, batch_rng, register, shard_rows
from pretrainx.data.readers import CorpusError
from pretrainx.data.sources import ArraySource
from pretrainx.errors import MissingExtra, UserError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
HELDOUT_SEED = 20200619     # fixed: the held-out split must not move with config.seed


@dataclasses.dataclass
class ImageArrays:
    name: str                       # names the FID cache folder
    train_images: np.ndarray        # (N, H, W, C) uint8
    train_labels: np.ndarray        # (N,) int32
    heldout_images: np.ndarray
    heldout_labels: np.ndarray
    class_names: tuple[str, ...]


def to_unit_range(images_uint8: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return images_uint8.astype(np.float32) / 127.5 - 1.0


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> uint8 [0, 255] (clipped), for PNGs and feature extractors."""
    return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


class ImageSource:
    """Batches of an in-memory uint8 image array as float32 in [-1, 1]: the rows come from an
    ``ArraySource`` (seeded epoch shuffles, a pure function of (seed, index), so resume is exact);
    the flips from the batch's own generator."""

    def __init__(self, images, labels, batch_size, seed, *, shuffle=True, random_flip=False):
        self.rows = ArraySource({"image": images, "label": labels.astype(np.int32)}, batch_size,
                                seed, shuffle=shuffle, drop_remainder=True)
        self.batch_size, self.seed, self.random_flip = batch_size, seed, random_flip

    def get_batch(self, index: int, shard: tuple[int, int] = (0, 1)) -> dict[str, np.ndarray]:
        batch = self.rows.get_batch(index, shard)
        images = to_unit_range(batch["image"])
        if self.random_flip:
            # Drawn for the whole global batch, then sliced: the same flips whatever the sharding.
            draws = batch_rng(self.seed, index, stream=streams.IMAGE_FLIPS)
            flips = draws.random(self.batch_size) < 0.5
            mine = flips[shard_rows(self.batch_size, shard)]
            images = np.where(mine[:, None, None, None], images[:, :, ::-1], images)
        return {"image": np.ascontiguousarray(images), "label": batch["label"]}


# ---- loaders: data config -> ImageArrays ------------------------------------------------------

#: IDX type codes -> numpy dtypes (big-endian)
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

def read_idx(path: str) -> np.ndarray:
    """An IDX file (gzipped when the name ends in .gz): zero, zero, dtype code, ndim, big-endian
    uint32 dims, then the data. A file shorter (or longer) than its header says -> one line."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (EOFError, OSError) as e:
        raise CorpusError(f"{path}: truncated or corrupt ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise CorpusError(f"{path} is not an IDX file (bad magic {raw[:4]!r})")
    dtype, ndim = np.dtype(IDX_DTYPES[raw[2]]), raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise CorpusError(f"{path} is truncated inside its IDX header")
    shape = tuple(int(n) for n in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = 4 + 4 * ndim + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise CorpusError(f"{path} holds {len(raw)} bytes, its IDX header {shape} x "
                          f"{dtype.itemsize} bytes says {expected}: "
                          f"{'truncated' if len(raw) < expected else 'trailing data'}")
    return np.frombuffer(raw, dtype, offset=4 + 4 * ndim).reshape(shape)


def _idx_file(folder: str, stem: str) -> str:
    for name in (stem + ".gz", stem):
        if os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise FileNotFoundError(f"no {stem}[.gz] in {folder!r} (config.data.path)")


def _load_idx(cfg) -> ImageArrays:
    def split(prefix):
        images = read_idx(_idx_file(cfg.path, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_idx_file(cfg.path, f"{prefix}-labels-idx1-ubyte"))
        return images[..., None], labels.astype(np.int32)
    train_x, train_y = split("train")
    test_x, test_y = split("t10k")
    classes = tuple(str(c) for c in range(int(train_y.max()) + 1))
    return ImageArrays(os.path.basename(os.path.normpath(cfg.path)), train_x, train_y, test_x,
                       test_y, classes)


def _split_fixed(images, labels, fraction):
    order = np.random.default_rng(HELDOUT_SEED).permutation(len(images))
    n_heldout = int(round(len(images) * fraction))
    held, train = order[:n_heldout], order[n_heldout:]
    return images[train], labels[train], images[held], labels[held]


def _load_digits(cfg) -> ImageArrays:
    from sklearn.datasets import load_digits   # bundled with scikit-learn: no download
    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    fraction = cfg.heldout_fraction
    parts = _split_fixed(images, digits.target.astype(np.int32), fraction)
    # The name keys the FID cache (classifier, reference statistics): another split, another name.
    name = "digits" if fraction == 0.1 else f"digits-heldout{len(parts[2])}"
    return ImageArrays(name, *parts, tuple(str(c) for c in range(10)))


def _decode(data: bytes, where: str) -> np.ndarray:
    """The pixels of one encoded image (grey stays grey, anything else becomes RGB); a file
    that is no readable image -> one line naming it."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB" if im.mode not in ("L", "I;16") else "L"))
    except UnidentifiedImageError:
        raise CorpusError(f"{where}: not a readable PNG/JPEG image (no image format "
                          f"recognised in its bytes)") from None
    except (OSError, SyntaxError, ValueError) as e:     # a known format, cut short or corrupt
        raise CorpusError(f"{where}: not a readable PNG/JPEG image ({e})") from None


def _archive_class(member_path: str, archive_path: str) -> str:
    parent = os.path.basename(os.path.dirname(member_path))
    if parent:
        return parent
    stem = os.path.basename(archive_path).split(".")[0]
    return stem.rsplit("-", 1)[-1]


def _iter_image_files(root: str):
    """(class name, encoded bytes, where) for every image under ``root`` in a fixed (sorted)
    order; ``where`` names the file (``archive:member`` inside a tar)."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"config.data.path {root!r} is not a folder of images")
    for entry in sorted(os.listdir(root)):
        path = os.path.join(root, entry)
        if os.path.isdir(path):
            for dirpath, _, files in sorted(os.walk(path)):
                for name in sorted(files):
                    if name.lower().endswith(IMAGE_SUFFIXES):
                        with open(os.path.join(dirpath, name), "rb") as f:
                            yield os.path.basename(dirpath), f.read(), os.path.join(dirpath, name)
        elif ".tar" in entry or entry.endswith(".tgz"):
            try:
                with tarfile.open(path) as tar:
                    members = sorted((m for m in tar.getmembers()
                                      if m.isfile() and m.name.lower().endswith(IMAGE_SUFFIXES)),
                                     key=lambda m: m.name)
                    for m in members:
                        yield (_archive_class(m.name, path), tar.extractfile(m).read(),
                               f"{path}:{m.name}")
            except (tarfile.TarError, EOFError, OSError) as e:
                raise CorpusError(f"{path}: not a readable tar archive, truncated or corrupt "
                                  f"({type(e).__name__})") from None


def _same_shape(images: list, wheres: list, size: int) -> list:
    """``images`` of one shape: greys become RGB when the folder mixes both; when sizes differ,
    every image is resized to ``size`` (data.image_size) or, with none set, the first odd file is
    refused by name. Images of one size and mode are returned untouched (resized later, with the
    padding, as before)."""
    if len({im.ndim for im in images}) > 1:
        log.warning("the images mix grey and colour: %d grey images converted to RGB",
                    sum(im.ndim == 2 for im in images))
        images = [np.repeat(im[..., None], 3, -1) if im.ndim == 2 else im for im in images]
    odd = next((i for i, im in enumerate(images) if im.shape != images[0].shape), None)
    if odd is None:
        return images
    if not size:
        raise CorpusError(f"{wheres[odd]} is {_size(images[odd])}, {wheres[0]} "
                          f"{_size(images[0])}: set data.image_size to resize every image")
    from PIL import Image
    log.warning("the images differ in size (%s is %s, %s %s): all resized to %dx%d",
                wheres[odd], _size(images[odd]), wheres[0], _size(images[0]), size, size)
    return [np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR))
            for im in images]


def _size(image: np.ndarray) -> str:
    return "x".join(map(str, image.shape[:2]))


def _load_archive(cfg) -> ImageArrays:
    names, images, wheres = [], [], []
    for class_name, data, where in _iter_image_files(cfg.path):
        names.append(class_name)
        images.append(_decode(data, where))
        wheres.append(where)
    if not images:
        raise FileNotFoundError(f"no PNG/JPEG images under {cfg.path!r} (config.data.path)")
    classes = tuple(sorted(set(names)))
    labels = np.array([classes.index(n) for n in names], np.int32)
    images = np.stack(_same_shape(images, wheres, int(cfg.image_size)))
    if images.ndim == 3:
        images = images[..., None]
    parts = _split_fixed(images, labels, cfg.heldout_fraction)
    return ImageArrays(os.path.basename(os.path.normpath(cfg.path)), *parts, classes)


def _load_tfds(cfg) -> ImageArrays:
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise MissingExtra("data.kind='tfds_images' needs tensorflow-datasets: "
                           "pip install 'pretrainx[tfds]'") from e
    data_dir = cfg.tfds_data_dir or None
    builder = tfds.builder(cfg.tfds_name, data_dir=data_dir)
    if not builder.is_prepared():
        raise FileNotFoundError(
            f"TFDS data set {cfg.tfds_name!r} is not prepared under {builder.data_dir!r}; this "
            f"framework never downloads: prepare it elsewhere and set config.data.tfds_data_dir")
    image_key, label_key = cfg.image_key, cfg.label_key

    def split(name):
        source = tfds.data_source(cfg.tfds_name, split=name, data_dir=data_dir, download=False)
        rows = [source[i] for i in range(len(source))]
        return (np.stack([r[image_key] for r in rows]).astype(np.uint8),
                np.array([r[label_key] for r in rows], np.int32))
    train_x, train_y = split(cfg.train_split)
    test_x, test_y = split(cfg.heldout_split)
    label_names = builder.info.features[label_key].names
    return ImageArrays(cfg.tfds_name, train_x, train_y, test_x, test_y, tuple(label_names))


_LOADERS = {"idx": _load_idx, "digits": _load_digits, "image_archive": _load_archive,
            "tfds_images": _load_tfds}


def _pad_and_resize(images: np.ndarray, pad: int, size: int) -> np.ndarray:
    if pad:
        images = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    if size and size != images.shape[1]:
        from PIL import Image
        channels = images.shape[-1]
        images = np.stack([
            np.asarray(Image.fromarray(im.squeeze(-1) if channels == 1 else im).resize(
                (size, size), Image.BILINEAR)).reshape(size, size, channels)
            for im in images])
    return images


def load_image_arrays(data_config) -> ImageArrays:
    """The data set's uint8 train and held-out arrays, after the configured padding/resizing."""
    # every field but those of the training batches (flips, reflow's pairs) picks the arrays
    key = json.dumps({k: v for k, v in data_config.items() if k not in ("random_flip", "couplings")},
                     sort_keys=True, default=str)
    if key not in _CACHE:
        _CACHE.clear()          # one data set at a time: CIFAR-sized arrays are not small
        _CACHE[key] = _load_uncached(data_config)
    return _CACHE[key]


_CACHE: dict = {}


def _load_uncached(data_config) -> ImageArrays:
    if data_config.kind not in _LOADERS:
        raise UserError(f"unknown image data kind {data_config.kind!r}; known {sorted(_LOADERS)}")
    arrays = _LOADERS[data_config.kind](data_config)
    pad, size = int(data_config.pad), int(data_config.image_size)
    if pad or size:
        arrays.train_images = _pad_and_resize(arrays.train_images, pad, size)
        arrays.heldout_images = _pad_and_resize(arrays.heldout_images, pad, size)
        arrays.name += f"_pad{pad}_size{size or arrays.train_images.shape[1]}"
    return arrays


def build_image_dataset(data_config, *, batch_size, eval_batch_size, seq_len=None, seed=0):
    arrays = load_image_arrays(data_config)
    if data_config.couplings:      # reflow: fixed (noise, sample) pairs (couplings.py)
        from pretrainx.data.couplings import CouplingSource
        train = CouplingSource(data_config.couplings, batch_size, seed)
    else:
        train = ImageSource(arrays.train_images, arrays.train_labels, batch_size, seed,
                            random_flip=bool(data_config.random_flip))
    # Validation reads the held-out split in order and unflipped: the same rows every eval.
    val = ImageSource(arrays.heldout_images, arrays.heldout_labels, eval_batch_size, seed,
                      shuffle=False)
    info = {"name": arrays.name, "image_shape": tuple(arrays.train_images.shape[1:]),
            "num_classes": len(arrays.class_names), "class_names": arrays.class_names,
            "train_examples": len(arrays.train_images),
            "heldout_examples": len(arrays.heldout_images)}
    return Dataset(train=train, val=val, tokenizer=None, info=info)


for _kind in _LOADERS:
    register(_kind)(build_image_dataset)
