"""Image sources: the IDX reader on real Fashion-MNIST, digits, archives of CIFAR-10 JPEGs, and
the resume / sharding / flip properties of the batches."""
import gzip
import os
import shutil

import numpy as np
import pytest

from conftest import SHARED_DATA, data_config
from pretrainx.data import base
from pretrainx.config import images as image_presets
from pretrainx.data import images as images_lib

FMNIST = os.path.join(SHARED_DATA, "fashion-mnist")
CIFAR_JPEG = os.path.join(SHARED_DATA, "cifar10-test-jpeg")
needs_fmnist = pytest.mark.skipif(not os.path.isdir(FMNIST),
                                  reason=f"no Fashion-MNIST IDX files at {FMNIST}")
needs_cifar = pytest.mark.skipif(not os.path.isdir(CIFAR_JPEG),
                                 reason=f"no CIFAR-10 JPEG archives at {CIFAR_JPEG}")


def _build(**data):
    return base.build(data_config(**data), batch_size=16, eval_batch_size=8,
                      seq_len=None, seed=3)


def test_idx_reader_on_a_written_file(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 0x08, 3]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    for name, opener in (("a-idx3-ubyte", open), ("a-idx3-ubyte.gz", gzip.open)):
        with opener(tmp_path / name, "wb") as f:
            f.write(header + array.tobytes())
        np.testing.assert_array_equal(images_lib.read_idx(str(tmp_path / name)), array)


@needs_fmnist
def test_idx_reader_on_real_fashion_mnist():
    images = images_lib.read_idx(os.path.join(FMNIST, "train-images-idx3-ubyte.gz"))
    labels = images_lib.read_idx(os.path.join(FMNIST, "train-labels-idx1-ubyte.gz"))
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,) and labels.min() == 0 and labels.max() == 9
    assert np.all(np.bincount(labels) == 6000)           # Fashion-MNIST is balanced
    dataset = _build(kind="idx", path=FMNIST)
    assert dataset.info["heldout_examples"] == 10000 and dataset.info["image_shape"] == (28, 28, 1)
    batch = dataset.train.get_batch(0)
    assert batch["image"].shape == (16, 28, 28, 1) and batch["image"].dtype == np.float32
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1


def test_digits_source_and_fixed_heldout_split():
    dataset = _build(kind="digits", pad=4)
    assert dataset.info["image_shape"] == (16, 16, 1) and dataset.info["num_classes"] == 10
    batch = dataset.train.get_batch(0)
    assert batch["image"].shape == (16, 16, 16, 1) and batch["label"].dtype == np.int32
    assert batch["image"][:, :4].max() == -1.0            # the padding is background
    val = dataset.val.get_batch(0)
    other_seed = base.build(data_config(**{"kind": "digits", "pad": 4}),
                            batch_size=16, eval_batch_size=8, seq_len=None, seed=99)
    np.testing.assert_array_equal(other_seed.val.get_batch(0)["image"], val["image"])


def test_image_folder_of_class_folders(tmp_path):
    from PIL import Image
    for cls in ("ants", "bees"):
        os.makedirs(tmp_path / cls)
        for i in range(5):
            Image.fromarray(np.full((6, 6, 3), 40 * i, np.uint8)).save(tmp_path / cls / f"{i}.png")
    arrays = images_lib.load_image_arrays(image_presets.image_archive_data(str(tmp_path), 0.2))
    assert arrays.class_names == ("ants", "bees")
    assert len(arrays.train_images) == 8 and len(arrays.heldout_images) == 2
    assert arrays.train_images.shape[1:] == (6, 6, 3)


@needs_cifar
def test_archive_source_on_cifar_jpegs(tmp_path):
    for cls in ("cat", "ship"):                           # two classes keep the test quick
        shutil.copy(os.path.join(CIFAR_JPEG, f"test-{cls}.tar.gz"), tmp_path)
    dataset = _build(kind="image_archive", path=str(tmp_path), heldout_fraction=0.1)
    assert dataset.info["class_names"] == ("cat", "ship")
    assert dataset.info["train_examples"] == 1800 and dataset.info["heldout_examples"] == 200
    batch = dataset.train.get_batch(7)
    assert batch["image"].shape == (16, 32, 32, 3) and set(batch["label"]) <= {0, 1}


def test_batches_resume_exactly_shard_consistently_and_flip_deterministically():
    config = {"kind": "digits", "random_flip": True}
    uninterrupted = _build(**config).train
    first_run = [uninterrupted.get_batch(i) for i in range(120)]   # > 1 epoch of 1617 // 16
    resumed = _build(**config).train                                # a fresh process at N = 50
    for i in range(50, 120):
        again = resumed.get_batch(i)
        for k in ("image", "label"):
            np.testing.assert_array_equal(again[k], first_run[i][k])
    halves = [resumed.get_batch(5, shard=(p, 2)) for p in range(2)]
    np.testing.assert_array_equal(np.concatenate([h["image"] for h in halves]),
                                  first_run[5]["image"])
    plain = _build(kind="digits").train.get_batch(5)
    flipped = np.any(first_run[5]["image"] != plain["image"], axis=(1, 2, 3))
    assert 0 < flipped.sum() < 16
    np.testing.assert_array_equal(first_run[5]["image"][flipped],
                                  plain["image"][flipped][:, :, ::-1])


def test_tfds_images_fails_fast_and_clearly_when_absent(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(FileNotFoundError, match="not prepared"):
        images_lib.load_image_arrays(
            data_config(kind="tfds_images", tfds_name="cifar10", tfds_data_dir=str(tmp_path)))
