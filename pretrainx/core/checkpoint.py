"""Orbax checkpoints: the train state plus the data position, saved together, restored exactly.

Layout under ``workdir``:
  checkpoints/<step>/{state,meta}   the last ``checkpoint.keep`` saves (async, every N steps)
  checkpoints_best/<step>/...       the best save by ``checkpoint.best_metric`` (at eval steps)

  frozen/                           the frozen parameters (``TrainState.frozen``), written once
                                    at the run's first save: they never change, so the step
                                    checkpoints hold ``frozen={}`` and restore reads them here

``meta`` is JSON: the data stream's next batch index and the metrics at that step. A corrupt
latest checkpoint is never deleted: restore falls back to the next older one, and once that one
has restored (so the failure was the newer one's, not a config that fits none) a training run
moves the unreadable ones aside to ``checkpoints/corrupt-<step>`` and says so: the run then saves
those steps again instead of failing on "step already exists". Read-only restores (``eval``,
``sample``) move nothing.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import sys
import time

import jax
import orbax.checkpoint as ocp

from pretrainx.core import orbax_logs
from pretrainx.core.orbax_logs import reader_notices_dropped
from pretrainx.data.base import DataState
from pretrainx.errors import UserError
from pretrainx.run import rundir

log = logging.getLogger(__name__)


FROZEN_DIR = rundir.FROZEN


class CheckpointError(UserError, RuntimeError):
    pass


def has_checkpoint(workdir: str) -> bool:
    """Whether ``workdir`` holds a step checkpoint (a run to resume, not one to start)."""
    directory = rundir.path(workdir, rundir.CHECKPOINTS)
    return os.path.isdir(directory) and any(s.isdigit() for s in os.listdir(directory))


def recover_deleted_checkpoints(workdir: str) -> None:
    """Before a rerun reads ``workdir``: when its step checkpoints are gone (``checkpoints/``
    deleted) but the run logged steps, a silent restart from step 0 would drop every row and
    later collide with ``checkpoints_best/`` (StepAlreadyExistsError). The best checkpoint, a
    whole state with its data position, is copied back as the step to resume; with none, the
    rerun is refused and nothing is touched. An empty ``checkpoints/`` and no best is a run that
    crashed before its first save: it starts over, as always."""
    latest_dir = rundir.path(workdir, rundir.CHECKPOINTS)
    if has_checkpoint(workdir) or jax.process_index() != 0:
        return
    best = sorted(int(s) for s in rundir.kept_checkpoint_steps(
        rundir.path(workdir, rundir.CHECKPOINTS_BEST)))
    if best:
        os.makedirs(latest_dir, exist_ok=True)
        shutil.copytree(rundir.path(workdir, os.path.join(rundir.CHECKPOINTS_BEST, str(best[-1]))),
                        os.path.join(latest_dir, str(best[-1])))
        log.warning("%s holds no step checkpoint (deleted?): resuming from the best one, step %d "
                    "(copied from %s); steps after it are trained again", latest_dir, best[-1],
                    rundir.CHECKPOINTS_BEST)
        return
    logged = [int(r.get("step", 0)) for r in rundir.read_rows(workdir)] if rundir.has_metrics(
        workdir) else []
    if not os.path.isdir(latest_dir) and max(logged, default=0) > 0:
        raise CheckpointError(
            f"{workdir} logged steps up to {max(logged)} but its {rundir.CHECKPOINTS}/ is gone: "
            f"nothing to resume from and nothing was changed; restore it, or move "
            f"{rundir.METRICS} away to start over here")


def without_frozen(state):
    """The state as the step checkpoints hold it: ``frozen`` is saved once, apart."""
    return state.replace(frozen={})


def save_frozen(workdir: str, frozen) -> None:
    """Write ``frozen`` to ``workdir/frozen`` (replacing what is there); nothing when empty."""
    if not jax.tree.leaves(frozen):
        return
    save_whole_shards_on_cpu()
    checkpointer = ocp.StandardCheckpointer(multiprocessing_options=_barriers("frozen"))
    try:
        checkpointer.save(os.path.abspath(os.path.join(workdir, FROZEN_DIR)), frozen, force=True)
        checkpointer.wait_until_finished()
    finally:
        checkpointer.close()


def restore_frozen(workdir: str, target):
    """The frozen parameters saved in ``workdir`` onto ``target`` (ShapeDtypeStructs with
    shardings); ``target`` itself when it has no leaves."""
    if not jax.tree.leaves(target):
        return target
    directory = os.path.abspath(os.path.join(workdir, FROZEN_DIR))
    if not os.path.isdir(directory):
        raise CheckpointError(f"the run has frozen parameters but {directory} is missing")
    checkpointer = ocp.StandardCheckpointer()
    try:
        return checkpointer.restore(directory, target)
    finally:
        checkpointer.close()


def _barriers(prefix: str) -> ocp.options.MultiprocessingOptions:
    return ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=prefix)


_cpu_saves_whole_shards = False


def save_whole_shards_on_cpu() -> None:
    """On CPU devices, each replica of a replicated array is saved whole by one device.

    Orbax's default outside GPUs splits every replicated array over its replicas, cutting each
    slice with a separate JAX op: on CPU devices those ops are the whole cost of a save (2 CPU
    devices: 2 ops per array; 8: 8). A UNet's save on 8 CPU devices, 536 arrays, took 19 s of
    which 16 s were the 4,232 slices. The files written are the same, and so is restoring them.
    """
    global _cpu_saves_whole_shards
    if _cpu_saves_whole_shards or jax.default_backend() != "cpu":
        return
    absl_log = logging.getLogger("absl")    # its "overriding jax.Array" warning is this choice
    level = absl_log.level
    absl_log.setLevel(logging.ERROR)
    # the default handler's per-host array metadata store is kept, so the files are the same
    store = getattr(ocp.type_handlers.get_type_handler(jax.Array), "_array_metadata_store", None)
    try:
        ocp.type_handlers.register_type_handler(
            jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False,
                                                      array_metadata_store=store), override=True)
    finally:
        absl_log.setLevel(level)
    _cpu_saves_whole_shards = True


def _manager(directory: str, options: ocp.CheckpointManagerOptions) -> ocp.CheckpointManager:
    save_whole_shards_on_cpu()
    return ocp.CheckpointManager(os.path.abspath(directory), item_names=("state", "meta"),
                                 options=options)


def raise_write_failure(directory) -> None:
    """Inside ``except``: a save that could not write (a full disk, a file size limit, a
    read-only folder) is one line naming the folder and the system's reason; anything else is
    re-raised as it is (a bug keeps its traceback)."""
    e = sys.exc_info()[1]
    if not orbax_logs.is_write_failure(e):
        raise e
    raise CheckpointError(f"a checkpoint could not be written under {directory} (disk full, a "
                          f"file size limit or a read-only folder?): {orbax_logs.one_line(e)}"
                          ) from None


class Checkpointer:
    def __init__(self, workdir: str, ckpt_config):
        self.workdir = workdir
        self.frozen_saved = False     # frozen/ holds this run's frozen parameters
        self.every = int(ckpt_config.every)
        self.best_metric = ckpt_config.best_metric
        async_save = bool(ckpt_config.async_save)
        # a failed async save is told once, by save/wait: not also by Orbax's threads
        orbax_logs.failed_save_noise_dropped()
        # Each manager gets its own barrier names: multi-process saves of the latest and the best
        # checkpoint of one step would otherwise both wait at "_async_commit_complete.<step>"
        # and fail ("Barrier ... is already ongoing").
        self.latest = _manager(rundir.path(workdir, rundir.CHECKPOINTS), ocp.CheckpointManagerOptions(
            max_to_keep=int(ckpt_config.keep), enable_async_checkpointing=async_save,
            multiprocessing_options=_barriers("latest")))
        self.best = None
        if self.best_metric:
            mode = ckpt_config.best_mode
            if mode not in ("min", "max"):
                raise UserError(f"checkpoint.best_mode must be 'min' or 'max', got {mode!r}")
            self.best = _manager(rundir.path(workdir, rundir.CHECKPOINTS_BEST), ocp.CheckpointManagerOptions(
                max_to_keep=1, best_fn=lambda m: m[self.best_metric], best_mode=mode,
                keep_checkpoints_without_metrics=False, enable_async_checkpointing=async_save,
                multiprocessing_options=_barriers("best")))

    @staticmethod
    def _args(state, data_state: DataState, metrics: dict | None):
        meta = {"data": data_state.to_json(), "metrics": metrics or {}}
        return ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))

    def _save_frozen_once(self, state) -> None:
        if not self.frozen_saved:
            save_frozen(self.workdir, state.frozen)
            self.frozen_saved = True

    def _check_present(self, manager: ocp.CheckpointManager, step: int) -> None:
        """A checkpoint folder deleted under the run: said in one line, made again, and the
        manager's list of kept steps read anew (else Orbax fails later on the vanished steps)."""
        newest = max(manager.all_steps(), default=None)   # its async save may still be writing
        if os.path.isdir(manager.directory) and not _vanished_steps(manager, newest):
            return
        try:
            manager.wait_until_finished()    # a save in flight into the deleted folder
        except Exception:  # noqa: BLE001 - its step is lost with the folder; said below
            pass
        if jax.process_index() == 0:
            log.warning("%s was deleted while the run trained (the steps it held are gone): made "
                        "it again; saving step %d there", manager.directory, step)
            os.makedirs(manager.directory, exist_ok=True)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils
            multihost_utils.sync_global_devices("pretrainx_checkpoints_remade")
        manager.reload()

    def _saving(self, manager: ocp.CheckpointManager, step: int, save) -> None:
        """``save()`` into ``manager``: an Orbax failure because saved steps vanished from disk
        (the folder deleted and recreated under an async save) is one line, not a traceback."""
        self._check_present(manager, step)
        try:
            manager.check_for_errors()
            save()
        except Exception:  # noqa: BLE001 - told apart: steps deleted under the run
            gone = _vanished_steps(manager, step)
            if not gone:
                raise_write_failure(manager.directory)
            # the folder went while an async save was writing into it: that save is lost
            log.warning("checkpoints %s of %s were deleted while the run trained (a save into "
                        "them failed): saving step %d anew", gone, manager.directory, step)
            os.makedirs(manager.directory, exist_ok=True)
            manager.reload()
            save()

    def save(self, step: int, state, data_state: DataState, metrics: dict | None = None) -> None:
        """Async save; errors of an earlier async save surface here, never silently."""
        self._save_frozen_once(state)
        self._saving(self.latest, step, lambda: self.latest.save(
            step, args=self._args(without_frozen(state), data_state, metrics), force=True))

    def save_best(self, step: int, state, data_state: DataState, metrics: dict) -> None:
        if self.best is None or self.best_metric not in metrics:
            return
        self._save_frozen_once(state)
        self._saving(self.best, step, lambda: self.best.save(
            step, args=self._args(without_frozen(state), data_state, metrics),
            metrics={self.best_metric: float(metrics[self.best_metric])}, force=True))

    def check_best_metric(self, scalars: dict) -> str | None:
        """After the first eval: a ``best_metric`` the eval never reports would keep no best
        checkpoint in silence. A misspelt one (other ``val/`` metrics exist) -> the error text;
        no validation metrics at all -> a warning."""
        if self.best is None or self.best_metric in scalars:
            return None
        reported = sorted(k for k in scalars if not k.startswith("time/"))
        if any(k.startswith("val/") for k in reported):
            return (f"checkpoint.best_metric {self.best_metric!r} is not among the eval's metrics "
                    f"({', '.join(reported)}); no best checkpoint could be kept")
        log.warning("the evals report no %s (no validation data?): no best checkpoint is kept",
                    self.best_metric)
        return None

    def latest_step(self) -> int | None:
        return self.latest.latest_step()

    def restore(self, target_state) -> tuple[object, DataState, int] | None:
        """Newest readable checkpoint onto ``target_state`` (ShapeDtypeStructs with shardings),
        frozen parameters included; newer unreadable ones are moved aside."""
        unreadable = []
        restored = restore_newest(self.latest, without_frozen(target_state), unreadable)
        if restored is None:
            return None
        state, data_state, step = restored
        if unreadable:
            self._move_aside(unreadable, step)
        self.frozen_saved = True
        return state.replace(frozen=restore_frozen(self.workdir, target_state.frozen)), data_state, step

    def _move_aside(self, steps: list[int], restored_step: int) -> None:
        directory = rundir.path(self.workdir, rundir.CHECKPOINTS)
        if jax.process_index() == 0:
            for step in steps:
                target = os.path.join(directory, f"corrupt-{step}")
                if os.path.exists(target):          # a second corrupt copy of the same step
                    target += f"-{int(time.time())}"
                os.rename(os.path.join(directory, str(step)), target)
                log.warning("checkpoint %d is unreadable: moved it to %s; resuming from step %d "
                            "(steps after it are trained again)", step, target, restored_step)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils
            multihost_utils.sync_global_devices("pretrainx_corrupt_moved_aside")
        self.latest.reload()

    def wait(self) -> None:
        """Block until async saves finish; raises if one failed (one line when its folder was
        deleted under it)."""
        for manager in (self.latest, self.best):
            if manager is None:
                continue
            try:
                manager.wait_until_finished()
            except Exception:  # noqa: BLE001 - told apart: a deleted folder is the user's doing
                if os.path.isdir(manager.directory):
                    raise_write_failure(manager.directory)
                raise CheckpointError(f"{manager.directory} was deleted while a save was "
                                      f"writing into it; rerun the same command to resume from "
                                      f"what is left") from None

    def close(self) -> None:
        self.latest.close()
        if self.best is not None:
            self.best.close()


def _restore_step(manager: ocp.CheckpointManager, step: int, target_state) -> dict:
    def restore(item):
        return manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(item), meta=ocp.args.JsonRestore()))
    try:
        return restore(target_state)
    except ValueError as e:
        # A checkpoint written before the state had ``aux`` (runner contract v2): when this run's
        # aux is empty too, restore the other fields; anything else stays an error.
        if jax.tree.leaves(getattr(target_state, "aux", None)) or "aux" not in str(e):
            raise
        fields = {f.name: getattr(target_state, f.name)
                  for f in dataclasses.fields(target_state) if f.name != "aux"}
        restored = restore(fields)
        return {**restored, "state": target_state.replace(**restored["state"])}


def restore_newest(manager: ocp.CheckpointManager, target_state, unreadable: list | None = None):
    """(state, data state, step) of the newest readable checkpoint; None when there is none.

    An unreadable checkpoint is skipped with a warning (its step appended to ``unreadable``);
    CheckpointError when every one is unreadable (then the target, i.e. the config, is the more
    likely culprit, and nothing is moved).
    """
    failures = []
    for step in sorted(manager.all_steps(), reverse=True):
        try:
            restored = _restore_step(manager, step, target_state)
        except Exception as e:  # noqa: BLE001 - any failure means "try the older one"
            failures.append(f"step {step}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
            log.warning("checkpoint at step %d is unreadable (%s); trying an older one", step, e)
            if unreadable is not None:
                unreadable.append(step)
            continue
        if failures:
            log.warning("restored step %d; newer checkpoints were unreadable: %s", step,
                        "; ".join(failures))
        return restored["state"], DataState.from_json(restored["meta"].get("data")), step
    if failures:
        raise CheckpointError(f"no readable checkpoint in {manager.directory}: " + "; ".join(failures))
    return None


def _vanished_steps(manager: ocp.CheckpointManager, left_out: int | None) -> list[int]:
    """The kept steps whose folders are gone from disk: the folder was deleted and made again
    (by an async save writing into it) under the run. ``left_out`` is not asked about: a step
    whose save may still be writing under a temporary name, or the one being saved."""
    return [s for s in sorted(manager.all_steps()) if s != left_out and
            not os.path.isdir(os.path.join(manager.directory, str(s)))]


def restore_state_readonly(workdir: str, which: str, target_state):
    """(TrainState, DataState, step) of the "latest" or "best" checkpoint of a run, read-only."""
    sub = {"latest": rundir.CHECKPOINTS, "best": rundir.CHECKPOINTS_BEST}[which]
    directory = os.path.join(workdir, sub)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"no checkpoint directory {directory}")
    # save_interval_steps=0: a read-only manager saves nothing (orbax warns when told otherwise)
    options = ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0)
    with reader_notices_dropped():
        manager = _manager(directory, options)
    try:
        restored = restore_newest(manager, without_frozen(target_state))
    finally:
        manager.close()
    if restored is None:
        raise FileNotFoundError(f"no checkpoint in {directory}")
    state, data_state, step = restored
    return state.replace(frozen=restore_frozen(workdir, target_state.frozen)), data_state, step
