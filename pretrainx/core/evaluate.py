"""Periodic evaluation: the objective's own loss on the validation split (``val/*``), then its
plug-in evaluators (``eval/*``: FID, sample grids, text samples).

Validation batches are pooled weighted by the denominator the objective's ``loss_fn`` reports
(tokens, masked tokens, examples), and ``finalize_metrics`` derives what is not a mean from the
pooled values: perplexity is exp of the pooled NLL, never a mean of perplexities.
"""
from __future__ import annotations

import collections
import copy
import dataclasses
import functools
import os

import jax
import numpy as np

from pretrainx.core import sharding as sharding_lib, step as step_lib, batches
from pretrainx.data import rng as streams
from pretrainx.errors import UserError
from pretrainx.objectives.base import DENOMINATOR, EvalContext
from pretrainx.run import rundir
from pretrainx.run.preemption import Preempted

IN_FLIGHT = 2     # validation batches dispatched ahead of the one being read back


def eval_key(seed: int, step: int) -> jax.Array:
    """The evaluators' key at ``step``: fold_in keeps (seed, step) pairs apart, where
    PRNGKey(seed + step) gave seed 1 at step 0 the key of seed 0 at step 1."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), streams.EVALUATORS), step)


def check_held_out(config, dataset) -> None:
    """What ``pretrainx eval`` needs to report a validation loss, else one line saying what is
    missing: held-out data, at least one batch, and (preference pairs) batches covering every
    held-out pair."""
    if dataset.val is None:
        raise UserError(f"the run's data (data.kind {config.data.kind!r}) has no held-out split: "
                        f"nothing to evaluate; give one, e.g. --config.data.val_fraction=0.1")
    if int(config.eval.num_batches) < 1:
        raise UserError(f"eval.num_batches is {config.eval.num_batches}: nothing to evaluate; "
                        f"give --config.eval.num_batches=N (N >= 1)")
    held_out = dataset.info.get("val_pairs")
    covered = int(config.eval.num_batches) * int(config.eval.batch_size)
    if held_out and covered < held_out:
        raise UserError(f"eval.num_batches x eval.batch_size = {covered} rows cover only part of "
                        f"the {held_out} held-out pairs: --config.eval.num_batches="
                        f"{-(-held_out // config.eval.batch_size)}")


class TaskEvaluation:
    """``eval.tasks`` through lm-evaluation-harness (``core/harness.py``) on the weights of an
    eval: ``eval/<task>/<metric>``. Made when the run starts, so that a task the harness does not
    know or a model it cannot score (a masked LM) is one line before any step is trained. Scoring
    is deterministic (greedy, no sampling, no bootstrap): a resumed run reports the numbers of an
    uninterrupted one."""

    def __init__(self, objective, config, mesh):
        from pretrainx.core import harness     # lazy: lm-eval is an optional extra
        self.lm = harness.PretrainxLM(objective, None, batch_size=int(config.eval.tasks_batch_size),
                                      mesh=mesh)
        names = [t.strip() for t in str(config.eval.tasks).split(",") if t.strip()]
        self.suite = harness.TaskSuite(names, task_dir=os.path.expanduser(config.eval.task_dir))
        self.limit = int(config.eval.tasks_limit) or None
        self.higher_is_better: dict[str, bool] = {}    # eval/<task>/<metric> -> its direction

    def __call__(self, params) -> dict[str, float]:
        self.lm.params = params
        scores, better = self.suite.run(self.lm, limit=self.limit)
        self.higher_is_better.update({f"eval/{task}/{metric}": bool(up) for task, directions
                                      in better.items() for metric, up in directions.items()})
        return {f"eval/{task}/{metric}": value for task, metrics in scores.items()
                for metric, value in metrics.items()}

    def wrong_direction(self, metric: str, mode: str) -> str | None:
        """The error text when ``checkpoint.best_mode`` ranks a task metric the wrong way."""
        if metric not in self.higher_is_better or (mode == "max") == self.higher_is_better[metric]:
            return None
        right = "max" if self.higher_is_better[metric] else "min"
        return (f"checkpoint.best_metric {metric!r} is {'higher' if right == 'max' else 'lower'}"
                f"-is-better (lm-evaluation-harness), but checkpoint.best_mode is {mode!r}: give "
                f"--config.checkpoint.best_mode={right}")


class EvalRunner:
    """One periodic evaluation of a run: the pooled validation loss, then the objective's plug-in
    evaluators (each an ``objectives.base.Evaluator``)."""

    def __init__(self, objective, config, mesh, dataset, workdir: str, *, host_batch=None,
                 with_tasks: bool = False):
        self.objective, self.config, self.mesh = objective, config, mesh
        self.dataset, self.workdir = dataset, workdir
        self.num_batches = int(config.eval.num_batches)
        self.total_steps = int(config.train.steps)
        self.plugins = objective.evaluators()
        # with_tasks: the train loop's evals (``pretrainx eval`` scores tasks with --tasks)
        self.tasks = TaskEvaluation(objective, config, mesh) if with_tasks and config.eval.tasks else None
        # (source, index, step) -> this process's transformed rows, as the runner makes them
        fields = objective.data_request(config).fields
        self.host_batch = host_batch or (lambda source, index, step: batches.host_batch(
            source, objective, index, config.seed, step=step, total_steps=self.total_steps,
            train=False, fields=fields))
        self._eval_step = jax.jit(functools.partial(step_lib.eval_step, objective=objective,
                                                    total_steps=self.total_steps))

    def val_metrics(self, params, frozen, aux=None, step: int = 0, *,
                    should_stop=None) -> dict[str, float]:
        source = self.dataset.val
        if source is None or self.num_batches <= 0:
            return {}
        scalars = self._pooled(source, "val", params, frozen, aux, step, should_stop)
        # a mixture of sources (data/mixtures.py) is pooled source by source too: val/<name>/loss
        for name, part in getattr(source, "parts", {}).items():
            scalars.update(self._pooled(part, f"val/{name}", params, frozen, aux, step,
                                        should_stop, finalize=self._finalize_source(name)))
        return scalars

    def _finalize_source(self, name: str):
        """The objective's ``finalize_metrics`` for one source of a mixture, as if its validation
        split were the run's: the counts of ``info["sources"][name]`` (its tokens, its bytes)
        replace the whole split's, so ``val/<name>/bpb`` is that source's bits per byte."""
        counts = self.dataset.info.get("sources", {}).get(name, {})
        own = copy.copy(self.objective)
        own.spec = dataclasses.replace(self.objective.spec, info={**self.objective.spec.info, **{
            k: v for k, v in counts.items() if k.startswith("val_")}})
        return own.finalize_metrics

    def _pooled(self, source, prefix: str, params, frozen, aux, step: int,
                should_stop, finalize=None) -> dict[str, float]:
        """The objective's validation metrics over ``num_batches`` of ``source``, each a mean
        weighted by its batch's denominator, then ``finalize`` (the objective's
        ``finalize_metrics``: what is not a mean, from the pooled values), named
        ``prefix/metric``."""
        sums: dict[str, float] = {}
        total = 0.0
        rng = jax.random.PRNGKey(self.config.seed + streams.VAL_LOSS_SEED_OFFSET)
        aux = {} if aux is None else aux
        # A batch's result is read back only once IN_FLIGHT later batches are dispatched: the host
        # prepares the next batch while the device works (a device_get right after each dispatch
        # serialised them), and a SIGTERM still interrupts within a few batches.
        in_flight, outs = collections.deque(), []
        for i in range(self.num_batches):
            if should_stop is not None and should_stop():
                raise Preempted(f"SIGTERM during the evaluation at step {step}")
            batch = self.host_batch(source, i, step)
            in_flight.append(self._eval_step(params, frozen, aux,
                                             sharding_lib.put_batch(batch, self.mesh),
                                             jax.random.fold_in(rng, i), step))
            if len(in_flight) > IN_FLIGHT:
                outs.append(jax.device_get(in_flight.popleft()))
        outs.extend(jax.device_get(list(in_flight)))
        for out in outs:
            weight = float(out.pop(DENOMINATOR))
            total += weight
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + weight * float(v)
        pooled = {k: v / total if total > 0 else float("nan") for k, v in sums.items()}
        pooled = (finalize or self.objective.finalize_metrics)(pooled)
        return {f"{prefix}/{k}": float(np.asarray(v)) for k, v in pooled.items()}

    def run(self, params, frozen, step: int, *, final: bool = False, aux=None,
            should_stop=None, tasks: bool = False) -> dict[str, float]:
        """``params``: the weights to evaluate (the EMA when the run keeps one); ``final``: the
        run's last evaluation, where evaluators may add their costly extras; ``should_stop()``:
        polled between batches and plug-ins, ``Preempted`` when it says so (a SIGTERM);
        ``tasks``: run ``eval.tasks`` too (their own cadence, ``loop.plan_step``)."""
        scalars = self.val_metrics(params, frozen, aux, step, should_stop=should_stop)
        if tasks and self.tasks is not None:
            scalars.update(self.tasks(params))
        ctx = EvalContext(params=params, frozen=frozen, step=step, workdir=self.workdir,
                          rng=eval_key(int(self.config.seed), step), mesh=self.mesh,
                          val_data=self.dataset.val, tokenizer=self.dataset.tokenizer, final=final,
                          aux=aux, samples_dir=rundir.path(self.workdir, rundir.SAMPLES) if self.workdir else "")
        for plugin in self.plugins:
            if should_stop is not None and should_stop():
                raise Preempted(f"SIGTERM during the evaluation at step {step}")
            for name, value in plugin(ctx):
                scalars[f"eval/{name}"] = float(value)
        return scalars
