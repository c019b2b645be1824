"""Token shards on disk, read through memory maps: the format ``pretrainx tokenize`` writes and the
``"shards"`` data kind reads.

A shards folder holds

* ``shard_00000.tokens.npy``: the token ids of a run of whole documents, each followed by EOS
  where the vocabulary has one (uint16 when the vocabulary fits, else uint32);
* ``shard_00000.docs.npy``: int64 offsets of the documents in it (``docs + 1`` values, 0 first,
  the token count last): the document index;
* ``shard_00000.json``: its counts and the sha256 of both files, written after they are complete;
* ``tokenizer.json``: the tokenizer, whose sha256 the manifest records;
* ``manifest.json``: written last, so a folder without it is unfinished (rerun ``tokenize``).

Each file is written under a temporary name and renamed, so a kill leaves whole files or
temporary ones, never a half-written file under a final name. Plain ``.npy`` files are memory-mapped
in a millisecond each and read by slicing; experiments/corpus_scale.md says why not ArrayRecord.

The data kind reads the concatenation of the shards as one token stream: the first tokens train,
the last documents (``manifest["split"]``) validate, each through ``sources.TokenWindows`` (a
batch is a pure function of (seed, index)), a window reading only the pages it touches.
``data.packing = "concat"`` cuts the same windows where documents begin (``PackedWindows``, from
the document index); ``data.sources`` mixes several folders with weights (data/mixtures.py).
"""
from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import tempfile

import numpy as np

from pretrainx.data import mixtures, packing, readers
from pretrainx.data import rng as streams
from pretrainx.data import tokenizer as tokenizer_lib
from pretrainx.data.base import Dataset, raw_tokens, register, shard_rows
from pretrainx.data.sources import TokenWindows
from pretrainx.errors import UserError

FORMAT = "pretrainx-shards-1"
MANIFEST = "manifest.json"
TOKENIZER = tokenizer_lib.FILENAME

log = logging.getLogger(__name__)
_DECODED_VAL_BYTES: set[str] = set()     # folders from before split.val_bytes, logged once


class ShardsError(UserError):
    """A shards folder that cannot be used as it is; the message names the file."""


def shard_name(index: int) -> str:
    return f"shard_{index:05d}"


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def tokenizer_sha256(tokenizer) -> str:
    """The sha256 of the tokenizer's saved ``tokenizer.json`` (its ids, merges, special tokens)."""
    with tempfile.TemporaryDirectory() as tmp:
        return file_sha256(tokenizer.save(tmp))


def write_atomically(path: str, write) -> None:
    """``write(file)`` into a temporary name beside ``path``, then rename it to ``path``."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: str, blob: dict) -> None:
    write_atomically(path, lambda f: f.write(json.dumps(blob, indent=1).encode() + b"\n"))


def read_json(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ShardsError(f"{path}: not valid JSON ({e.msg}); the folder is damaged") from None


#: documents encoded at a time: their ids as Python lists (~36 bytes a token) are turned into
#: an array before the next are encoded, so a shard's tokens cost 2-4 bytes each in memory
ENCODE_BATCH_DOCS = 512


def encode_shard(tokenizer, texts: list[str], eos: int | None, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, document offsets) of ``texts``, each document followed by ``eos`` when not None."""
    encode_batch = getattr(tokenizer, "encode_batch", None)
    tail = [eos] if eos is not None else []
    parts, lengths = [], []
    for i in range(0, len(texts), ENCODE_BATCH_DOCS):
        batch = texts[i:i + ENCODE_BATCH_DOCS]
        ids = encode_batch(batch) if encode_batch else [tokenizer.encode(t) for t in batch]
        lengths += [len(s) + len(tail) for s in ids]
        parts.append(np.fromiter((t for s in ids for t in s + tail), dtype, sum(lengths[-len(ids):])))
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)
    tokens = np.concatenate(parts) if parts else np.zeros((0,), dtype)
    return tokens, offsets


def write_shard(folder: str, index: int, tokens: np.ndarray, offsets: np.ndarray,
                text_chars: int, text_bytes: int) -> dict:
    """Shard ``index``'s two arrays, then its record (``shard_NNNNN.json``), each atomically.
    ``text_bytes``: its documents' UTF-8 bytes, without EOS (``readers.utf8_bytes``)."""
    base = os.path.join(folder, shard_name(index))
    record = {"name": shard_name(index), "tokens": int(len(tokens)), "docs": int(len(offsets) - 1),
              "text_chars": int(text_chars), "text_bytes": int(text_bytes)}
    for suffix, array in (("tokens", tokens), ("docs", offsets)):
        path = f"{base}.{suffix}.npy"
        write_atomically(path, lambda f, a=array: np.save(f, a, allow_pickle=False))
        record[f"{suffix}_sha256"] = file_sha256(path)
    write_json(f"{base}.json", record)
    return record


def finished_shard(folder: str, index: int) -> dict | None:
    """Shard ``index``'s record when its files are whole (checksums match), else None."""
    base = os.path.join(folder, shard_name(index))
    if not os.path.exists(f"{base}.json"):
        return None
    record = read_json(f"{base}.json")
    for suffix in ("tokens", "docs"):
        path = f"{base}.{suffix}.npy"
        if not os.path.exists(path) or file_sha256(path) != record[f"{suffix}_sha256"]:
            return None
    return record


class ShardStream:
    """Tokens ``[lo, hi)`` of the concatenated shards, without reading them into memory: what
    ``TokenWindows`` reads windows from (``len`` and ``windows``) in place of one array."""

    def __init__(self, arrays: list[np.ndarray], lo: int = 0, hi: int | None = None,
                 offsets: list[np.ndarray] | None = None):
        self.arrays = arrays
        #: each shard's document index (``docs + 1`` offsets, memory-mapped), where it is read
        self.offsets = offsets
        self.bounds = np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(np.int64)
        self.lo, self.hi = lo, int(self.bounds[-1]) if hi is None else hi

    def __len__(self) -> int:
        return self.hi - self.lo

    def slice(self, lo: int, hi: int) -> "ShardStream":
        return ShardStream(self.arrays, self.lo + lo, self.lo + hi, self.offsets)

    def document_starts(self, start: int, length: int) -> np.ndarray:
        """Where documents begin inside tokens ``(start, start + length)`` (relative to
        ``start``), from the shards' document index; a shard's end is always a document's."""
        at, end = self.lo + start, self.lo + start + length
        k = int(np.searchsorted(self.bounds, at, side="right")) - 1
        cuts = []
        while k < len(self.arrays) and self.bounds[k] < end:
            offsets, base = self.offsets[k], int(self.bounds[k])
            lo = int(np.searchsorted(offsets, at - base, side="right"))
            hi = int(np.searchsorted(offsets, end - base, side="left"))
            cuts.append(np.asarray(offsets[lo:hi], np.int64) + base - at)
            k += 1
        return np.concatenate(cuts) if cuts else np.zeros((0,), np.int64)

    def read(self, start: int, length: int) -> np.ndarray:
        """``length`` tokens from ``start`` (relative to this stream), across shard ends."""
        at = self.lo + start
        k = int(np.searchsorted(self.bounds, at, side="right")) - 1
        parts = []
        while length > 0:
            offset = at - int(self.bounds[k])
            piece = self.arrays[k][offset:offset + length]
            parts.append(piece)
            at, length, k = at + len(piece), length - len(piece), k + 1
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def windows(self, starts: np.ndarray, width: int) -> np.ndarray:
        out = np.empty((len(starts), width), np.int32)
        for row, start in enumerate(starts):
            out[row] = self.read(int(start), width)
        return out


def load_manifest(folder: str, named: str = "config.data.path") -> dict:
    """The folder's manifest; ``named``: where the folder was given, for the error's line."""
    path = os.path.join(folder, MANIFEST)
    if not os.path.isdir(folder):
        raise ShardsError(f"shards folder not found: {folder} ({named})")
    if not os.path.exists(path):
        raise ShardsError(f"{folder} has no {MANIFEST}: not a finished shards folder (run "
                          f"`pretrainx tokenize` into it, again if it was stopped)")
    manifest = read_json(path)
    if manifest.get("format") != FORMAT:
        raise ShardsError(f"{path}: format {manifest.get('format')!r}, this reader knows {FORMAT!r}")
    return manifest


def mapped(path: str, length: int, dtype) -> np.ndarray:
    """The .npy at ``path`` memory-mapped, checked to hold ``length`` values of ``dtype``."""
    if not os.path.exists(path):
        raise ShardsError(f"{path} is missing: the manifest lists it (a damaged folder)")
    try:
        array = np.load(path, mmap_mode="r")
    except ValueError as e:
        raise ShardsError(f"{path}: not a whole .npy file ({e})") from None
    if hasattr(array, "_mmap") and hasattr(mmap, "MADV_RANDOM"):
        # windows are read at random offsets: no read-ahead of pages a window will not use
        array._mmap.madvise(mmap.MADV_RANDOM)
    if array.shape != (length,) or array.dtype != np.dtype(dtype):
        raise ShardsError(f"{path} holds {array.shape[0]} {array.dtype} values, {MANIFEST} "
                          f"says {length} {np.dtype(dtype)}: the manifest does not match its shards")
    return array


def open_shards(folder: str, manifest: dict) -> ShardStream:
    """The memory-mapped shards and their document index, each checked against the manifest's
    counts and dtype (the checksums are verified when ``tokenize`` resumes; reading 1 GB to check
    them at every start would cost seconds)."""
    arrays, offsets = [], []
    for record in manifest["shards"]:
        base = os.path.join(folder, record["name"])
        arrays.append(mapped(base + ".tokens.npy", record["tokens"], manifest["dtype"]))
        offsets.append(mapped(base + ".docs.npy", record["docs"] + 1, np.int64))
    stream = ShardStream(arrays, offsets=offsets)
    if len(stream) != manifest["tokens"]:
        raise ShardsError(f"{os.path.join(folder, MANIFEST)}: {manifest['tokens']} tokens in "
                          f"all, its shards hold {len(stream)}")
    return stream


def run_tokenizer(folder: str, manifest: dict, data_config, tokenizer, special_tokens):
    """The folder's tokenizer (with the objective's special tokens), after checking that the
    run's (``data.tokenizer``, or a resumed run's saved one) is the same."""
    own = tokenizer_lib.load(os.path.join(folder, TOKENIZER))
    if file_sha256(os.path.join(folder, TOKENIZER)) != manifest["tokenizer_sha256"]:
        raise ShardsError(f"{os.path.join(folder, TOKENIZER)} is not the tokenizer {MANIFEST} "
                          f"records (sha256 differs): the folder is damaged")
    own = tokenizer_lib.with_special_tokens(own, special_tokens)
    given = tokenizer
    if given is None and data_config.tokenizer:
        given = tokenizer_lib.with_special_tokens(
            tokenizer_lib.from_spec(data_config.tokenizer), special_tokens)
    if given is not None and tokenizer_sha256(given) != tokenizer_sha256(own):
        raise ShardsError(f"{os.path.join(folder, MANIFEST)}: the shards were made with another "
                          f"tokenizer than this run's (sha256 {manifest['tokenizer_sha256'][:12]}); "
                          f"tokenize again with the run's tokenizer or use the folder's")
    return own


def open_split(folder: str, config, tokenizer, special_tokens, named: str = "config.data.path"):
    """(tokenizer, manifest, train stream, validation stream) of one shards folder, its tokenizer
    checked against ``tokenizer`` (or ``config.tokenizer``) when one is given."""
    manifest = load_manifest(folder, named)
    tok = run_tokenizer(folder, manifest, config, tokenizer, special_tokens)
    stream = open_shards(folder, manifest)
    cut = manifest["split"]["train_tokens"]
    return tok, manifest, stream.slice(0, cut), stream.slice(cut, len(stream))


def val_bytes(folder: str, manifest: dict, val_split: ShardStream, tok) -> int:
    """UTF-8 bytes of the validation documents (bits per byte's denominator), as ``tokenize``
    recorded them; decoded (seconds on a big split) for a folder from before it did."""
    if "val_bytes" in manifest["split"]:
        return int(manifest["split"]["val_bytes"])
    if folder not in _DECODED_VAL_BYTES:
        _DECODED_VAL_BYTES.add(folder)
        log.info("%s predates split.val_bytes in its %s: decoding the validation split to count "
                 "its bytes (tokenize it again to record them)", folder, MANIFEST)
    return readers.decoded_bytes(val_split, tok, manifest["eos_id"])


def split_info(manifests: list[dict], tok, train_tokens: int, val_tokens: int, packing: str) -> dict:
    return {"train_tokens": int(train_tokens), "val_tokens": int(val_tokens), "packing": packing,
            "docs": sum(int(m["docs"]) for m in manifests),
            "shards": sum(len(m["shards"]) for m in manifests),
            "vocab_size": int(tok.vocab_size), "eos_id": manifests[0]["eos_id"]}


#: data.packing: windows of the stream, or the same windows cut where documents begin
LAYOUTS = ("stream", "concat")


class PackedWindows:
    """The windows ``source`` draws (``TokenWindows`` over a ``ShardStream``, or a
    ``mixtures.MixtureWindows``), each cut where a document begins (the shards' document index)
    into one "concat" row (``packing.concat_rows``, as the text kind's): segment ids, positions
    restarting at each document, no target across a document's end."""

    def __init__(self, source, seq_len: int, pad_id: int = 0):
        self.source, self.seq_len, self.pad_id = source, seq_len, pad_id
        self.batch_size = source.batch_size
        self.parts = {name: PackedWindows(part, seq_len, pad_id)
                      for name, part in getattr(source, "parts", {}).items()}

    def placements(self, index: int) -> tuple[list, np.ndarray]:
        """(stream, start) of every window of global batch ``index``."""
        if isinstance(self.source, mixtures.MixtureWindows):
            which, starts = self.source.rows(index)
            return [self.source.streams[k] for k in which], starts
        starts = self.source.starts(index)
        return [self.source.tokens] * len(starts), starts

    def get_batch(self, index: int, shard: tuple[int, int] = (0, 1)) -> dict:
        streams_of_rows, starts = self.placements(index)
        mine = shard_rows(self.batch_size, shard)
        streams_of_rows, starts = streams_of_rows[mine], starts[mine]
        windows = np.empty((len(starts), self.source.width), np.int64)
        begins = np.zeros(windows.shape, bool)
        for row, (stream, start) in enumerate(zip(streams_of_rows, starts)):
            windows[row] = stream.read(int(start), self.source.width)
            begins[row, stream.document_starts(int(start), self.source.width)] = True
        return packing.concat_rows(windows, begins, self.pad_id, shift=self.source.shift)


@register("shards")
def build_shards(config, *, batch_size, eval_batch_size, seq_len, seed, fields=None,
                 tokenizer=None, special_tokens=()) -> Dataset:
    if config.packing not in LAYOUTS:
        raise ShardsError(f"data.packing={config.packing!r}: the shards kind reads windows of "
                          f"the token stream ('stream'), or cut where documents begin ('concat')")
    shift = not raw_tokens(fields)
    if config.sources:
        return build_mixture(config, batch_size=batch_size, eval_batch_size=eval_batch_size,
                             seq_len=seq_len, seed=seed, shift=shift, tokenizer=tokenizer,
                             special_tokens=special_tokens)
    folder = os.path.expanduser(config.path)
    tok, manifest, train_split, val_split = open_split(folder, config, tokenizer, special_tokens)
    train = TokenWindows(train_split, batch_size, seq_len, seed, config.sampling,
                         stream=streams.WINDOW_STARTS_TRAIN, shift=shift)
    width = seq_len + 1 if shift else seq_len
    val = (TokenWindows(val_split, eval_batch_size, seq_len, seed, "random",
                        stream=streams.WINDOW_STARTS_VAL, shift=shift)
           if len(val_split) > width else None)
    info = split_info([manifest], tok, len(train_split), len(val_split), config.packing)
    info["val_bytes"] = val_bytes(folder, manifest, val_split, tok)
    return Dataset(train=laid_out(train, config, seq_len), val=laid_out(val, config, seq_len),
                   tokenizer=tok, info=info)


def laid_out(source, config, seq_len: int):
    """``source`` as ``config.packing`` lays its windows out (None stays None)."""
    if source is None or config.packing == "stream":
        return source
    return PackedWindows(source, seq_len)


def build_mixture(config, *, batch_size, eval_batch_size, seq_len, seed, shift, tokenizer,
                  special_tokens) -> Dataset:
    """The mixture of ``config.sources`` (data/mixtures.py): every folder must hold the run's
    tokenizer (the first folder's when the run names none); each source validates on its own
    split, and the mixture's validation draws from them with the same weights."""
    if config.path:
        raise ShardsError(f"data.path={config.path!r} and data.sources are both set: give the "
                          f"folders in data.sources only")
    if config.sampling != "random":
        raise ShardsError(f"data.sampling={config.sampling!r}: a mixture draws random windows "
                          f"(data.sampling='random')")
    sources = mixtures.parse_sources(config.sources)
    manifests, trains, vals, tok, nbytes = [], {}, {}, tokenizer, {}
    for source in sources:
        folder = os.path.abspath(os.path.expanduser(source.path))
        own, manifest, trains[source.name], vals[source.name] = open_split(
            folder, config, tok, special_tokens, named=f"source {source.name!r} of config.data.sources")
        tok = tok or own                   # the first folder's, unless the run gave its own
        manifests.append(manifest)
        nbytes[source.name] = val_bytes(folder, manifest, vals[source.name], tok)
    weights = {s.name: s.weight for s in sources}
    train = mixtures.MixtureWindows(trains, weights, batch_size, seq_len, seed,
                                    streams.WINDOW_STARTS_TRAIN, shift)
    val = None
    if all(len(v) > train.width for v in vals.values()):    # each holds out at least a window
        parts = {n: TokenWindows(v, eval_batch_size, seq_len, seed, "random",
                                 stream=streams.WINDOW_STARTS_VAL, shift=shift)
                 for n, v in vals.items()}
        val = mixtures.MixtureWindows(vals, weights, eval_batch_size, seq_len, seed,
                                      streams.WINDOW_STARTS_VAL, shift, parts=parts)
    info = split_info(manifests, tok, sum(map(len, trains.values())),
                      sum(map(len, vals.values())), config.packing)
    info["sources"] = {s.name: {"path": os.path.abspath(os.path.expanduser(s.path)),
                                "weight": s.weight, "train_tokens": len(trains[s.name]),
                                "val_tokens": len(vals[s.name]),
                                "val_bytes": nbytes[s.name]}
                       for s in sources}
    info["val_bytes"] = sum(part["val_bytes"] for part in info["sources"].values())
    return Dataset(train=laid_out(train, config, seq_len), val=laid_out(val, config, seq_len),
                   tokenizer=tok, info=info)
