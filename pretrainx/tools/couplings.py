"""Reflow couplings (Liu et al. 2022, "Flow Straight and Fast"): (noise, sample, label) triples
made by integrating a trained flow run's ODE from fixed noise, then used as fixed training pairs for
a second ("2-rectified") flow, or for a 1-step distillation.

  pretrainx generate-couplings --workdir workdirs/fs_flow_s0 --out workdirs/couplings \
      --num 4096 --seed 0 --sampler euler --steps 32 [--shard 0 --num-shards 2]

The job is cut into chunks of ``chunk_size`` pairs; chunk c draws its noise from
``fold_in(key(seed), c)`` and its labels are the pair indices mod the number of classes, so every
pair is a pure function of (source weights, seed, index): the same files whatever the chunking
into shards, the number of devices, or how often the job was killed. Each chunk is one
``chunk_NNNNNN.npz`` (noise, image, label; float32 / float32 / int32), written to a temporary
name and renamed, so a killed job leaves only whole chunks and a rerun makes only the missing
ones. ``--shard k --num-shards n`` makes the chunks c with c % n == k (several jobs, one output
folder); on a mesh every device samples its share of a chunk's rows. ``couplings.json`` records
the job (source run and step, sampler, seed, sizes); a rerun with other settings is refused.

Training on the pairs: ``data.couplings = DIR`` on an image config (the real data still serves
validation and the FID reference); the flow objective then regresses ``noise - image`` on the
straight path between the pair instead of drawing fresh noise (``configs/diffusion/digits_reflow.py``).
"""
from __future__ import annotations

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.core import sharding as sharding_lib
from pretrainx.data.couplings import FIELDS, MANIFEST, chunk_path, load, num_chunks  # noqa: F401
from pretrainx.errors import UserError


def _write_manifest(out_dir: str, manifest: dict) -> None:
    path = os.path.join(out_dir, MANIFEST)
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        if old != manifest:
            diff = {k: (old.get(k), v) for k, v in manifest.items() if old.get(k) != v}
            raise UserError(f"{out_dir} holds couplings made with other settings {diff} "
                            f"(old, new): use another --out, or delete it")
        return
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


@functools.partial(jax.jit, static_argnames=("objective", "rows", "sampler", "steps", "guidance",
                                             "mesh"))
def _chunk(params, key_data, labels, *, objective, rows, sampler, steps, guidance, mesh):
    """(noise, sample) of one chunk: the noise drawn on device and split over the mesh's batch
    axes, both outputs replicated (any process can read them). Compiled once per objective and
    chunk shape (static arguments), so a job, or a test making many, compiles it once."""
    shape = (rows, *objective.image_shape)
    noise_rng, sampler_rng = jax.random.split(jax.random.wrap_key_data(key_data))
    noise = jax.random.normal(noise_rng, shape, jnp.float32)
    if mesh is not None:
        split = rows % sharding_lib.batch_divisor(mesh) == 0
        noise = jax.lax.with_sharding_constraint(noise, sharding_lib.batch_sharding(
            mesh, len(shape)) if split else sharding_lib.replicated(mesh))
    predict = objective.guided_predictor(params, labels, guidance)
    image = objective.run_sampler(predict, noise, sampler_rng, sampler, steps)
    if mesh is not None:
        noise, image = (jax.lax.with_sharding_constraint(a, sharding_lib.replicated(mesh))
                        for a in (noise, image))
    return noise, image


def write_couplings(objective, params, out_dir: str, *, num: int, seed: int, sampler: str, steps: int,
             guidance: float = 1.0, chunk_size: int = 256, shard: int = 0, num_shards: int = 1,
             source: dict | None = None, on_chunk=None) -> dict:
    """Write this shard's missing chunks of ``num`` couplings to ``out_dir``; returns counts.

    ``params``: the weights to integrate (a run's EMA); ``source``: what made them (recorded in the
    manifest); ``on_chunk(chunk)``: called after each chunk is written (progress; tests kill here).
    """
    if not 0 <= shard < num_shards:
        raise UserError(f"--shard {shard} is not in [0, --num-shards {num_shards})")
    if num < 1 or chunk_size < 1:
        raise UserError(f"--num ({num}) and --chunk-size ({chunk_size}) must be positive")
    sampler, steps, guidance = objective.sampler_settings(sampler, steps, guidance)
    os.makedirs(out_dir, exist_ok=True)
    _write_manifest(out_dir, {
        "source": source or {}, "num": num, "seed": seed, "sampler": sampler, "steps": steps,
        "guidance": guidance, "chunk_size": chunk_size,
        "image_shape": list(objective.image_shape), "num_classes": objective.num_classes})
    mesh = next((leaf.sharding.mesh for leaf in jax.tree_util.tree_leaves(params)
                 if isinstance(getattr(leaf, "sharding", None), jax.sharding.NamedSharding)), None)
    written, skipped = 0, 0
    for chunk in range(shard, num_chunks(num, chunk_size), num_shards):
        path = chunk_path(out_dir, chunk)
        if os.path.exists(path):
            skipped += 1
            continue
        start = chunk * chunk_size
        rows = min(chunk_size, num - start)
        index = np.arange(start, start + rows)
        labels = (index % objective.num_classes).astype(np.int32) if objective.num_classes else None
        key = jax.random.fold_in(jax.random.key(seed), chunk)
        noise, image = _chunk(params, np.asarray(jax.random.key_data(key)), labels,
                              objective=objective, rows=rows, sampler=sampler, steps=steps,
                              guidance=guidance, mesh=mesh)
        if jax.process_index() == 0:
            tmp = f"{path[:-len('.npz')]}.tmp{os.getpid()}.npz"
            np.savez(tmp, noise=np.asarray(noise, np.float32),
                     image=np.clip(np.asarray(image, np.float32), -1.0, 1.0),
                     label=np.zeros(rows, np.int32) if labels is None else labels)
            os.replace(tmp, path)
        written += 1
        if on_chunk is not None:
            on_chunk(chunk)
    return {"chunks": num_chunks(num, chunk_size), "written": written, "skipped": skipped}


def main(argv: list[str], restore) -> int:
    """``pretrainx generate-couplings``: pairs from a trained run's latest (or best) weights;
    ``restore(workdir, which) -> (objective, EvalContext, config)`` is the CLI's restore."""
    import argparse
    p = argparse.ArgumentParser(prog="pretrainx generate-couplings", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True, help="the trained flow run")
    p.add_argument("--checkpoint", choices=("latest", "best"), default="latest")
    p.add_argument("--out", required=True, help="folder for the chunk files")
    p.add_argument("--num", type=int, required=True, help="number of pairs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sampler", help="default: the run's sample.sampler")
    p.add_argument("--steps", type=int, help="default: the run's sample.steps")
    p.add_argument("--guidance", type=float, default=1.0)
    p.add_argument("--chunk-size", type=int, default=256, dest="chunk_size")
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--num-shards", type=int, default=1, dest="num_shards")
    args = p.parse_args(argv)
    objective, ctx, _ = restore(args.workdir, args.checkpoint)
    counts = write_couplings(
        objective, ctx.params, args.out, num=args.num, seed=args.seed, sampler=args.sampler,
        steps=args.steps, guidance=args.guidance, chunk_size=args.chunk_size, shard=args.shard,
        num_shards=args.num_shards, on_chunk=lambda c: print(f"chunk {c} written", flush=True),
        source={"workdir": os.path.abspath(args.workdir), "checkpoint": args.checkpoint,
                "step": int(ctx.step)})
    print(f"{args.out}: {counts['written']} chunks written, {counts['skipped']} already there, "
          f"{counts['chunks']} in all (shard {args.shard} of {args.num_shards})")
    return 0
