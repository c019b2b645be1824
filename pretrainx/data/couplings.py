"""Reading reflow couplings: the (noise, sample, label) files ``pretrainx generate-couplings``
writes (``tools/couplings.py``, which documents how they are made), served as training batches
when an image config sets ``data.couplings = DIR``. The format lives here, beside its reader, so
the data layer needs nothing from the tools that write it."""
from __future__ import annotations

import json
import os

import numpy as np

from pretrainx.data.sources import ArraySource
from pretrainx.errors import UserError

MANIFEST = "couplings.json"
FIELDS = ("noise", "image", "label")


def chunk_path(out_dir: str, chunk: int) -> str:
    return os.path.join(out_dir, f"chunk_{chunk:06d}.npz")


def num_chunks(num: int, chunk_size: int) -> int:
    return -(-num // chunk_size)


def load(out_dir: str) -> dict[str, np.ndarray]:
    """All couplings of a finished job as {"noise", "image", "label"} arrays in index order."""
    path = os.path.join(out_dir, MANIFEST)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no {MANIFEST} in {out_dir}: run pretrainx generate-couplings")
    with open(path) as f:
        manifest = json.load(f)
    total = num_chunks(manifest["num"], manifest["chunk_size"])
    missing = [c for c in range(total) if not os.path.exists(chunk_path(out_dir, c))]
    if missing:
        raise UserError(f"{out_dir} lacks {len(missing)} of {total} chunks (first {missing[0]}): "
                        f"rerun its generate-couplings command to finish it")
    parts = [np.load(chunk_path(out_dir, c)) for c in range(total)]
    return {k: np.concatenate([p[k] for p in parts]) for k in FIELDS}


class CouplingSource:
    """Training batches {"image": the flow's sample, "noise": its starting noise, "label"}: seeded
    epoch shuffles of the pairs (``ArraySource``: a pure function of (seed, index))."""

    def __init__(self, out_dir: str, batch_size: int, seed: int):
        self.rows = ArraySource(load(out_dir), batch_size, seed, shuffle=True, drop_remainder=True)
        self.batch_size = batch_size

    def get_batch(self, index: int, shard: tuple[int, int] = (0, 1)) -> dict[str, np.ndarray]:
        return self.rows.get_batch(index, shard)
