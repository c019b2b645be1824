"""The train loop as named phases. What a step does (log, evaluate, save, stop) is decided in
one place, ``plan_step``, from the step, the run's cadence and two signals (``stop_after``
reached, SIGTERM agreed); ``TrainLoop.run`` carries the plans out, one phase per method.

Per dispatch: queue the steps up to the next one that logs, evaluates, saves or halts (one on a
GPU or TPU; up to ``train.steps_per_dispatch`` on CPU devices: ``host_devices.steps_per_dispatch``);
read back and log the dispatch before's metrics (fetched only once this one is queued, so the
host never stalls the device); make the next dispatch's batches while the device works; plan
the last step of the dispatch; then, as planned: prove the state finite, evaluate, save, stop.
No non-finite state is ever evaluated or saved: the loss of an eval or save step is checked (it
was measured before the update), then every parameter, EMA and optimiser leaf.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.config.check import ConfigError
from pretrainx.core import (evaluate, host_devices, sharding as sharding_lib, state as state_lib,
                            step as step_lib)
from pretrainx.data.base import DataState
from pretrainx.run import metrics as metrics_lib, preemption, trackers

log = logging.getLogger(__name__)


EVAL_MARK = "time/eval_s"     # every eval row of metrics.jsonl has it; train rows never


class NonFiniteLossError(FloatingPointError):
    pass


class NonFiniteStateError(NonFiniteLossError):
    """The parameters (or optimiser state) are no longer finite: such a state is never saved."""


@dataclasses.dataclass
class RunResult:
    """What ``train.run`` returns to callers (tests, sweeps): the final state and the history."""
    state: state_lib.TrainState
    history: list            # one dict per logged step, as written to metrics.jsonl
    stopped_early: bool = False
    preempted: bool = False   # stopped by SIGTERM after saving (``pretrainx train`` exits 75)


@dataclasses.dataclass(frozen=True)
class Cadence:
    """How often a run logs, evaluates and saves, and the step it ends at."""
    total: int
    log_every: int
    eval_every: int          # 0: never
    save_every: int
    tasks_every: int | None = None   # eval.tasks: None: none configured; 0: only at the end

    def next_event(self, done: int) -> int:
        """The first step after ``done`` that logs, evaluates, saves or ends the run."""
        every = (self.log_every, self.eval_every, self.save_every, self.tasks_every or 0)
        return min([self.total] + [(done // e + 1) * e for e in every if e])

    @classmethod
    def of(cls, config, save_every: int) -> "Cadence":
        return cls(int(config.train.steps), int(config.train.log_every),
                   int(config.eval.every or 0), int(save_every),
                   int(config.eval.tasks_every) if config.eval.tasks else None)


@dataclasses.dataclass(frozen=True)
class StepPlan:
    """What the loop does once step ``done`` is dispatched."""
    done: int                # steps trained, this one included
    log: bool                # its metrics are logged in full (else only its learning rate)
    evaluate: bool
    save: bool
    tasks: bool = False      # the eval runs eval.tasks too (their own cadence)
    halt: bool = False       # ``stop_after`` reached: leave as a crash would, nothing saved
    preempted: bool = False  # SIGTERM, agreed by every process: save this step, then stop

    @property
    def check(self) -> bool:
        """The state is about to be evaluated or saved: its loss and weights must be finite."""
        return self.evaluate or self.save

    @property
    def stop(self) -> bool:
        return self.halt or self.preempted

    def eval_interrupted(self) -> "StepPlan":
        """A SIGTERM during this step's evaluation: save the step without its eval, stop."""
        return dataclasses.replace(self, evaluate=False, tasks=False, save=True, preempted=True)


def plan_step(done: int, cadence: Cadence, *, halt: bool = False,
              preempted: bool = False) -> StepPlan:
    """The plan of step ``done``: every decision of the loop, and nothing else decides."""
    last = done == cadence.total
    logged = done % cadence.log_every == 0 or last
    if halt:
        return StepPlan(done, log=logged, evaluate=False, save=False, halt=True)
    tasks = cadence.tasks_every is not None and (
        last or bool(cadence.tasks_every) and done % cadence.tasks_every == 0)
    evaluate = bool(cadence.eval_every) and (done % cadence.eval_every == 0 or last) or tasks
    return StepPlan(done, log=logged, evaluate=evaluate and not preempted,
                    save=done % cadence.save_every == 0 or last or preempted,
                    preempted=preempted, tasks=tasks and not preempted)


def _float_leaves(tree) -> list:
    """The leaves that can hold a NaN or an infinity (integer steps and counters cannot)."""
    return [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in _float_leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _all_finite_in_host_memory(tree) -> bool:
    """``_all_finite`` read where the arrays already are, the host's memory, with no program to
    compile: one reduction per leaf made the jitted check a 4.5 s compile for a small UNet."""
    return all(bool(np.isfinite(np.asarray(x)).all()) for x in _float_leaves(tree))


def finite_check():
    """The state's finiteness check: NumPy on one process's CPU devices; elsewhere a program on
    the devices (every process gets the same answer; nothing is copied to the host)."""
    if jax.default_backend() == "cpu" and jax.process_count() == 1:
        return _all_finite_in_host_memory
    return jax.jit(_all_finite)


class TrainLoop:
    """One invocation of the loop over a set-up, restored run (``train.run`` builds it)."""

    def __init__(self, built, config, workdir: str, ckpt, state, data_state: DataState, *,
                 last_saved: int | None, stop_after: int | None, on_eval,
                 eval_first: bool = False):
        self.built, self.config, self.ckpt = built, config, ckpt
        self.state, self.data_state, self.last_saved = state, data_state, last_saved
        self.stop_after, self.on_eval = stop_after, on_eval
        self.eval_first = eval_first   # the restored last step still lacks its final eval
        self.cadence = Cadence.of(config, ckpt.every)
        self.start = int(jax.device_get(state.step))
        self.per_dispatch = host_devices.steps_per_dispatch(config, built.mesh)
        self.chunk_fn = None if self.per_dispatch == 1 else step_lib.steps_per_dispatch(
            built.step_fn, self.per_dispatch, state_shardings=built.shardings,
            batch_shardings=built.batch_shardings)
        self.batches = []
        self.prefetch(self.start)   # the first dispatch's batches (one, at the end: for the rates)
        self.evaluator = evaluate.EvalRunner(built.objective, config, built.mesh, built.dataset,
                                             workdir, with_tasks=True)
        if config.eval.every and built.dataset.val is None:
            log.warning("no validation data (data.val_fraction is 0 or the split too short): "
                        "evals report no val/ metrics")
        self.writer = metrics_lib.MetricWriter(
            workdir, tensorboard=True, purge_step=self.start + 1 if self.start else None,
            trackers=lambda: trackers.from_config(config, workdir))
        self._measure_rates(built, config)
        self.progress = metrics_lib.Progress(self.cadence.total, self.start,
                                             bool(config.train.progress))
        self.clock = metrics_lib.Throughput(self.start)
        self.history, self.pending, self.evaluated = [], None, False
        self.started = time.perf_counter()   # "time/elapsed_s": wall seconds of this loop
        self.all_finite = finite_check()
        self.queue = host_devices.StepQueue(built.mesh)

    def _measure_rates(self, built, config) -> None:
        # The whole LR curve, computed once, is the one source of "train/lr": evaluating the
        # schedule on the device each step would wait for the step queued before it.
        steps = jnp.arange(self.cadence.total)
        self.host_lrs = np.asarray(jax.device_get(jax.jit(jax.vmap(built.schedule))(steps)))
        key, first = built.objective.tokens_key, self.batches[0]
        self.tokens_per_step = first[key].size * jax.process_count() if key in first else None
        flops = built.objective.flops_per_batch(first)           # of this process's rows
        self.flops_per_step = flops * jax.process_count() if flops else None

    def run(self) -> RunResult:
        plan = None
        # The watch spans ``finish`` too: a SIGTERM while the last saves land must not kill
        # the process half-way through them.
        with preemption.PreemptionWatch(self.config.train.preemption_check_every) as watch:
            try:
                if self.eval_first:
                    plan = self.missed_final_eval(watch)
                done = self.start
                while done < self.cadence.total:
                    metrics, trained = self.dispatch()
                    done += trained
                    self.flush()                 # the last dispatch's metrics, now this one is queued
                    self.prefetch(done)
                    plan = self.plan(done, watch)
                    self.hold_or_write_lr(plan, metrics, trained)
                    if plan.halt:
                        break
                    if plan.check:
                        self.check_finite(plan.done, metrics)
                    scalars = self.evaluate(plan, watch) if plan.evaluate else None
                    if plan.evaluate and scalars is None:
                        plan = plan.eval_interrupted()
                    if scalars is not None:
                        self.record_eval(plan.done, scalars)
                    if plan.save:
                        self.save(plan.done)
                    if scalars is not None:
                        self.after_eval(plan, scalars)
                    if plan.preempted:
                        self.progress.write(f"SIGTERM: saved step {plan.done} and stopping")
                    if plan.stop:
                        break
                self.flush()
            finally:
                self.finish()
        return RunResult(state=self.state, history=self.history,
                         stopped_early=bool(plan and plan.stop),
                         preempted=bool(plan and plan.preempted))

    def missed_final_eval(self, watch) -> StepPlan:
        """A rerun of a run whose last step was saved without its eval (SIGTERM during it):
        that eval now, its row and the best checkpoint; nothing is trained."""
        done = self.cadence.total
        log.warning("step %d was saved without its final eval (stopped during it): evaluating "
                    "it now", done)
        plan = plan_step(done, self.cadence)
        scalars = self.evaluate(plan, watch)
        if scalars is None:
            return plan_step(done, self.cadence, preempted=True).eval_interrupted()
        self.record_eval(done, scalars)
        self.after_eval(plan, scalars)
        return plan

    # --- the phases of a step, in the order the loop calls them ---------------------------------

    def dispatch(self) -> tuple[dict, int]:
        """Queue the steps of ``self.batches`` on the device: (the last one's metrics, not read
        back here; their count). On several CPU devices the dispatch before it is waited for
        (``host_devices.StepQueue``)."""
        n = len(self.batches)
        if self.chunk_fn is None:
            batch = sharding_lib.put_batch(self.batches[0], self.built.mesh)
            self.state, metrics = self.built.step_fn(self.state, batch)
        else:   # stacked per_dispatch deep; the rows past n repeat the last batch, unused
            rows = self.batches + self.batches[-1:] * (self.per_dispatch - n)
            stacked = {k: np.stack([b[k] for b in rows]) for k in rows[0]}
            batches = sharding_lib.put_batch(stacked, self.built.mesh, is_stacked=True)
            self.state, metrics = self.chunk_fn(self.state, batches, n)
        self.data_state = DataState(self.data_state.next_index + n)
        self.queue.dispatched(metrics)
        return metrics, n

    def prefetch(self, done: int) -> None:
        """Make the next dispatch's batches while the device works: up to the next step that
        logs, evaluates, saves or halts, at most ``per_dispatch`` of them."""
        if done >= self.cadence.total and self.batches:
            return
        end = self.cadence.next_event(done)
        if self.stop_after is not None and self.start + self.stop_after > done:
            end = min(end, self.start + self.stop_after)
        if jax.process_count() > 1:   # where the processes agree on a SIGTERM
            every = int(self.config.train.preemption_check_every)
            end = min(end, (done // every + 1) * every)
        first = self.data_state.next_index
        self.batches = [self.built.host_batch(self.built.dataset.train, first + i)
                        for i in range(max(1, min(self.per_dispatch, end - done)))]

    def plan(self, done: int, watch) -> StepPlan:
        halt = self.stop_after is not None and done - self.start >= self.stop_after
        # The SIGTERM flag is agreed (a collective every few steps) only by a loop that goes on.
        return plan_step(done, self.cadence, halt=halt, preempted=not halt and watch.stop_at(done))

    def hold_or_write_lr(self, plan: StepPlan, metrics, trained: int) -> None:
        for done in range(plan.done - trained + 1, plan.done):   # the dispatch's earlier steps
            self.writer.write(done, {"train/lr": float(self.host_lrs[done - 1])})
        if plan.log:   # read back after the next dispatch (``flush``)
            self.pending = (plan.done, metrics)
        else:          # the learning rate every step; logged steps get it in their row
            self.writer.write(plan.done, {"train/lr": float(self.host_lrs[plan.done - 1])})

    def flush(self) -> None:
        """Read back and log the held step's metrics (NonFiniteLossError for a bad loss)."""
        if self.pending is not None:
            held, self.pending = self.pending, None
            self._log_train(*held)

    def check_finite(self, done: int, metrics) -> None:
        """Before an eval or a save: the step's loss, then the state after its update."""
        if self.pending is not None:   # this step was logged: its row checks the loss
            self.flush()
        elif not math.isfinite(float(jax.device_get(metrics["loss"]))):
            self._log_train(done, metrics)   # raises NonFiniteLossError: nothing is saved
        # The loss was measured before the update; the update itself may have broken the
        # weights (a huge step, an overflow): such a state is neither evaluated nor saved.
        state = self.state
        if not bool(self.all_finite((state.params, state.ema_params, state.opt_state))):
            raise NonFiniteStateError(
                f"the parameters are not finite after step {done}; stopped without saving "
                f"(last good checkpoint: step {self.last_saved})")

    def evaluate(self, plan: StepPlan, watch) -> dict | None:
        """The eval of step ``plan.done``; None when a SIGTERM interrupted it."""
        began, done = time.perf_counter(), plan.done
        try:
            with watch.interruptible():
                scalars = self.evaluator.run(
                    self.state.eval_params(), self.state.frozen, done,
                    final=done == self.cadence.total, aux=self.state.aux, tasks=plan.tasks,
                    should_stop=watch.should_stop if jax.process_count() > 1 else None)
        except preemption.Preempted:
            self.progress.write(f"SIGTERM during the eval at step {done}: eval skipped")
            return None
        scalars["time/eval_s"] = time.perf_counter() - began
        scalars["time/elapsed_s"] = time.perf_counter() - self.started
        return scalars

    def record_eval(self, done: int, scalars: dict) -> None:
        """Log the eval; a non-finite validation loss stops the run like a train NaN; the best
        checkpoint is queued."""
        self.writer.write(done, scalars)
        self.history.append({"step": done, **scalars})
        for key in {"val/loss", self.ckpt.best_metric} & scalars.keys():
            if not math.isfinite(scalars[key]):
                raise NonFiniteLossError(
                    f"{key} is {scalars[key]} at step {done}; stopped without saving "
                    f"(last good checkpoint: step {self.last_saved})")
        self.progress.write(f"step {done}: " + ", ".join(
            f"{k}={v:.4f}" for k, v in scalars.items() if k.startswith("val/")))
        self.ckpt.save_best(done, self.state, self.data_state, scalars)

    def save(self, done: int) -> None:
        self.ckpt.save(done, self.state, self.data_state)
        self.last_saved = done

    def after_eval(self, plan: StepPlan, scalars: dict) -> None:
        """Once the step's saves are queued: the best metric is checked at the first eval that
        ran every evaluator (a typo or a task metric ranked the wrong way stops the run here, its
        step saved), then the caller's ``on_eval``."""
        tasks = self.evaluator.tasks
        if not self.evaluated and (plan.tasks or tasks is None):
            self.evaluated = True
            problem = self.ckpt.check_best_metric(scalars) or (tasks and tasks.wrong_direction(
                self.ckpt.best_metric, self.config.checkpoint.best_mode))
            if problem:
                raise ConfigError(problem)
        if self.on_eval is not None:
            self.on_eval(plan.done, scalars)

    def finish(self) -> None:
        """Saves already dispatched hold good states: they land even when the loop raised. A
        failed save raises from ``wait``; the writers are closed (TensorBoard flushed) anyway."""
        try:
            self.ckpt.wait()
        finally:
            self.progress.close()
            self.writer.close()
            self.ckpt.close()

    def _log_train(self, done: int, metrics) -> None:
        scalars = {f"train/{k}": float(v) for k, v in jax.device_get(metrics).items()}
        if not math.isfinite(scalars["train/loss"]):
            raise NonFiniteLossError(
                f"loss is {scalars['train/loss']} at step {done}; stopped without saving "
                f"(last good checkpoint: step {self.last_saved}). Lower the learning rate or "
                f"check the data.")
        scalars["train/lr"] = float(self.host_lrs[done - 1])   # the LR that step used
        rate = self.clock.measure(done)
        scalars["train/steps_per_sec"] = rate
        scalars["time/elapsed_s"] = time.perf_counter() - self.started
        if self.tokens_per_step:
            scalars["train/tokens_per_sec"] = rate * self.tokens_per_step
        u = metrics_lib.mfu(self.flops_per_step, rate, self.built.mesh.size)
        if u is not None:
            scalars["train/mfu"] = u
        self.writer.write(done, scalars)
        self.history.append({"step": done, **scalars})
        self._show_progress(done, scalars)

    def _show_progress(self, done: int, scalars: dict) -> None:
        post = {"loss": f"{scalars['train/loss']:.4f}"}
        if self.tokens_per_step:
            post["tok/s"] = f"{scalars['train/tokens_per_sec']:.3g}"
        if "train/mfu" in scalars:   # only where the device's peak FLOP/s is known (not CPU)
            post["mfu"] = f"{scalars['train/mfu']:.1%}"
        self.progress.update(done, post)
