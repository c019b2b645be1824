"""Text corpora through TensorFlow Datasets' random-access ``data_source`` (no TensorFlow needed).

``load_text`` reads an already prepared TFDS dataset (ArrayRecord files) and never downloads: a
machine with no internet would otherwise retry for minutes. ``prepare_text_dataset`` turns a
local text file into such a dataset (train/validation/test, one example per split holding the
``text`` feature, like TFDS's ``tiny_shakespeare``), so the TFDS path can be used offline:

    from pretrainx.data import tfds_text
    tfds_text.prepare_text_dataset("input.txt", "/data/tfds", name="tiny_shakespeare")
    text = tfds_text.load_text("tiny_shakespeare", "/data/tfds", "train")

``TextRecords`` streams one text feature per record, a document each: the ``tfds:NAME[/CONFIG]
[:SPLIT]`` sources of ``pretrainx tokenize`` (data/document_streams.py).

``tensorflow_datasets`` is imported inside the functions: it is slow to import and absent on
some training machines (the ``tfds`` extra), which then simply use ``data.path`` instead.
"""
from __future__ import annotations

import dataclasses
import glob
import os
from typing import Iterator

from pretrainx.errors import MissingExtra, UserError

#: how a tokenize source names a TFDS text set: tfds:NAME[/CONFIG][:SPLIT]
PREFIX = "tfds:"
#: records read (and decoded) at a time by ``TextRecords.documents``
READ_BATCH_RECORDS = 1024

DEFAULT_DATA_DIR = os.path.join("~", "tensorflow_datasets")   # TFDS's own default


class TFDSNotFoundError(FileNotFoundError):
    """The requested TFDS dataset is not prepared in the data dir (and we never download)."""


class TFDSSourceError(UserError):
    """A prepared TFDS set without the split or text feature asked for; the message names them.
    (Not readers.CorpusError: readers imports this module.)"""


def _tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise MissingExtra(f"TFDS text sets need tensorflow-datasets ({e}): "
                           f"pip install 'pretrainx[tfds]'") from None
    return tfds


def _how_to_provide(name: str, data_dir: str, where: str = "config: data.tfds_data_dir") -> str:
    return (f"TFDS dataset {name!r} is not prepared in data_dir {data_dir!r} (no download is "
            f"attempted). Provide it: run `tfds build {name.split(':')[0]} --data_dir DIR "
            f"--file_format=array_record` on a machine with internet and copy DIR here, or make "
            f"one from a local text file with pretrainx.data.tfds_text.prepare_text_dataset("
            f"TEXT_FILE, DIR, name=...), then pass that DIR as data_dir ({where})")


def _prepared_dirs(name: str, data_dir: str) -> list[str]:
    """Version folders (``data_dir/name[/config]/x.y.z``) that hold a ``dataset_info.json``."""
    base = name.split(":")[0]                       # "name/config:1.0.0" -> "name/config"
    root = os.path.join(os.path.expanduser(data_dir), base)
    infos = glob.glob(os.path.join(root, "**", "dataset_info.json"), recursive=True)
    return sorted(os.path.dirname(p) for p in infos)


def load_text(name: str, data_dir: str | None = None, split: str = "train",
              text_key: str = "text") -> str:
    """The ``text_key`` field of every example of ``split``, concatenated in order.

    ``split`` takes TFDS split syntax ("train", "validation+test", "train[:10%]"). Bytes are
    decoded as UTF-8. Raises :class:`TFDSNotFoundError` at once when the dataset is not prepared.
    """
    data_dir = data_dir or DEFAULT_DATA_DIR
    prepared = _prepared_dirs(name, data_dir)
    if not prepared:
        raise TFDSNotFoundError(_how_to_provide(name, data_dir))
    tfds = _tfds()
    try:
        source = tfds.data_source(name, split=split, data_dir=os.path.expanduser(data_dir),
                                  download=False, try_gcs=False)
    except (tfds.core.registered.DatasetNotFoundError, NotImplementedError, AssertionError):
        # Not in TFDS's registry (a dataset made by prepare_text_dataset), or the registered
        # builder disagrees with the files on disk: read the folder as it was written.
        builder = tfds.builder_from_directory(prepared[-1])
        source = builder.as_data_source(split=split)
    pieces = []
    for i in range(len(source)):
        value = source[i][text_key]
        pieces.append(value.decode("utf-8") if isinstance(value, bytes) else str(value))
    return "".join(pieces)


@dataclasses.dataclass(frozen=True)
class TextRecords:
    """The ``text_key`` feature of every record of a prepared TFDS split, one document each,
    read ``READ_BATCH_RECORDS`` at a time (memory: one batch), in the split's record order."""
    name: str
    split: str
    data_dir: str

    @classmethod
    def parse(cls, spec: str, data_dir: str | None) -> "TextRecords":
        """``tfds:NAME[/CONFIG][:SPLIT]`` (split "train" when not given)."""
        name, _, split = spec[len(PREFIX):].partition(":")
        if not name:
            raise UserError(f"{spec!r}: give tfds:NAME[/CONFIG][:SPLIT]")
        return cls(name, split or "train", os.path.abspath(os.path.expanduser(
            data_dir or DEFAULT_DATA_DIR)))

    def __str__(self) -> str:
        return f"{PREFIX}{self.name}:{self.split}"

    def open(self, text_key: str):
        """The split's data source, after checking the set is prepared and has the feature."""
        prepared = _prepared_dirs(self.name, self.data_dir)
        if not prepared:
            raise TFDSNotFoundError(_how_to_provide(self.name, self.data_dir, "--tfds-data-dir"))
        builder = _tfds().builder_from_directory(prepared[-1])   # the files as written
        features = list(builder.info.features.keys())
        if text_key not in features:
            raise TFDSSourceError(f"{self} ({prepared[-1]}): no feature {text_key!r} (features: "
                              f"{features}); pass --text-key")
        try:
            return builder.as_data_source(split=self.split)
        except ValueError as e:     # "Unknown split 'x'. Should be one of [...]"
            raise TFDSSourceError(f"{self} ({prepared[-1]}): split {self.split!r}: {e}") from None

    def describe(self, text_key: str) -> dict:
        """What the manifest records of the source (a file records its path and size)."""
        return {"tfds": self.name, "split": self.split, "data_dir": self.data_dir,
                "records": len(self.open(text_key))}

    def documents(self, text_key: str) -> Iterator[str]:
        source = self.open(text_key)
        for start in range(0, len(source), READ_BATCH_RECORDS):
            for record in source.__getitems__(range(start, min(start + READ_BATCH_RECORDS,
                                                               len(source)))):
                value = record[text_key]
                yield value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def split_points(n: int, fractions: tuple[float, float, float]) -> tuple[int, int]:
    """Cut points of ``n`` characters into train/validation/test by ``fractions``."""
    train, val, test = fractions
    if min(fractions) < 0 or abs(train + val + test - 1.0) > 1e-6:
        raise UserError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    first = int(n * train)
    second = first + int(n * val)
    return first, second


def _builder_class(name: str, text_file: str, fractions, version: str, examples_at: str):
    tfds = _tfds()

    class LocalTextDataset(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        """One local text file split by position into train/validation/test."""
        VERSION = tfds.core.Version(version)

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                description=f"Text of {os.path.basename(text_file)} split "
                            f"{fractions[0]:g}/{fractions[1]:g}/{fractions[2]:g} by position.",
                features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
                disable_shuffling=True)     # records in the text's order

        def _split_generators(self, dl_manager):
            with open(text_file, encoding="utf-8", newline="") as f:
                text = f.read()
            a, b = split_points(len(text), fractions)
            parts = {"train": text[:a], "validation": text[a:b], "test": text[b:]}
            return {split: self._generate_examples(part) for split, part in parts.items()}

        def _generate_examples(self, part):
            pieces = [p for p in part.split(examples_at) if p.strip()] if examples_at else [part]
            for key, piece in enumerate(pieces):
                yield key, {"text": piece}

    LocalTextDataset.name = name
    return LocalTextDataset


def prepare_text_dataset(text_file: str, data_dir: str, name: str = "local_text",
                         fractions: tuple[float, float, float] = (0.9, 0.05, 0.05),
                         version: str = "1.0.0", examples_at: str = "") -> str:
    """Write ``text_file`` as TFDS dataset ``name`` (ArrayRecord) under ``data_dir``.

    Default fractions are TFDS's ``tiny_shakespeare`` (0.9/0.05/0.05): "train" is nanoGPT's 90 %
    train split and "validation+test" its 10 % val split. One example per split, or, with
    ``examples_at`` (e.g. "\\n\\n"), one per non-blank piece of the split's text cut there (a
    document each, as a ``tfds:`` source of ``pretrainx tokenize`` reads them). Returns the
    dataset's version folder.
    """
    if not os.path.exists(text_file):
        raise FileNotFoundError(f"text file not found: {text_file}")
    tfds = _tfds()
    cls = _builder_class(name, text_file, tuple(fractions), version, examples_at)
    builder = cls(data_dir=os.path.expanduser(data_dir), file_format="array_record")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return str(builder.data_dir)
