"""Data sets register builders on import (see base.py for the contract)."""
from pretrainx.data.base import (BatchSource, DataState, Dataset, batch_rng, build,  # noqa: F401
                                 register, shard_rows)
from pretrainx.data import images, packing, sources, text  # noqa: F401,E402
