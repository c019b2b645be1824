"""Host batches as the runner makes them, for training and validation alike."""
from __future__ import annotations

import jax

from pretrainx.data import rng as streams
from pretrainx.data.base import batch_rng, shard_rows
from pretrainx.errors import UserError
from pretrainx.objectives.base import BatchContext


def host_batch(source, objective, index: int, seed: int, *, step: int | None = None,
               total_steps: int = 0, train: bool = True, fields=None):
    """Batch ``index`` of ``source`` for this process: its rows of the global batch, the fields
    the objective asked for, after the objective's host-side transform. The transform's
    generator is seeded by (seed, index, stream) only, the same in every process: it draws for
    the global batch and keeps this process's rows (``BatchContext.local``)."""
    shard = (jax.process_index(), jax.process_count())
    batch = source.get_batch(index, shard)
    if fields is not None:
        missing = [k for k in fields if k not in batch]
        if missing:
            raise UserError(f"objective {type(objective).__name__} asked the data for fields "
                            f"{list(fields)}; the data kind gives {sorted(batch)} (missing {missing})")
        batch = {k: batch[k] for k in fields}
    ctx = BatchContext(step=index if step is None else step, index=index, total_steps=total_steps,
                       global_batch_size=source.batch_size,
                       rows=shard_rows(source.batch_size, shard), train=train)
    rng = batch_rng(seed, index, streams.TRANSFORM_TRAIN if train else streams.TRANSFORM_VAL)
    return objective.transform(batch, rng, ctx=ctx)
