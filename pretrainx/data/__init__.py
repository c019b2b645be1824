"""Data: index-addressed batch sources and the data kinds that build them (see base.py for the
contract, text.py for the one text pipeline, images.py for images, sources.py for arrays)."""
from pretrainx.data.base import (TOKENS, BatchSource, DataState, Dataset, batch_rng,  # noqa: F401
                                 build, register, shard_rows)
from pretrainx.data import images, preferences, shards, sources, speeches, text  # noqa: F401,E402
