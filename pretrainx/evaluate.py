"""Periodic evaluation: the objective's own loss on the validation split (``val/*``), then its
plug-in evaluators (``eval/*``: FID, sample grids, text samples)."""
from __future__ import annotations

import jax
import numpy as np

from pretrainx import sharding as sharding_lib
from pretrainx.data.base import batch_rng
from pretrainx.objectives.base import EvalContext

VAL_STREAM = 8   # the rng stream of validation-time corruption: fixed, unlike training's


class Evaluator:
    def __init__(self, objective, config, mesh, dataset, workdir: str):
        self.objective, self.config, self.mesh = objective, config, mesh
        self.dataset, self.workdir = dataset, workdir
        self.num_batches = int(config.eval.num_batches)
        self.plugins = objective.evaluators()

        def eval_step(params, frozen, batch, rng):
            loss, metrics = objective.loss_fn(params, batch, rng, train=False, frozen=frozen)
            return {**metrics, "loss": loss}
        self._eval_step = jax.jit(eval_step)

    def val_metrics(self, params, frozen) -> dict[str, float]:
        source = self.dataset.val
        if source is None or self.num_batches <= 0:
            return {}
        sums: dict[str, float] = {}
        rng = jax.random.PRNGKey(self.config.seed + VAL_STREAM)
        for i in range(self.num_batches):
            batch = source.get_batch(i, (jax.process_index(), jax.process_count()))
            batch = self.objective.transform(batch, batch_rng(self.config.seed, i, VAL_STREAM))
            out = jax.device_get(self._eval_step(params, frozen, sharding_lib.put_batch(batch, self.mesh),
                                                 jax.random.fold_in(rng, i)))
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        means = {f"val/{k}": v / self.num_batches for k, v in sums.items()}
        if "val/nll" in means:   # perplexity of the mean NLL, not the mean of perplexities
            means["val/perplexity"] = float(np.exp(means["val/nll"]))
        return means

    def run(self, params, frozen, step: int, *, final: bool = False) -> dict[str, float]:
        """``params``: the weights to evaluate (the EMA when the run keeps one); ``final``: the
        run's last evaluation, where evaluators may add their costly extras."""
        scalars = self.val_metrics(params, frozen)
        ctx = EvalContext(params=params, frozen=frozen, step=step, workdir=self.workdir,
                          rng=jax.random.PRNGKey(self.config.seed + step), mesh=self.mesh,
                          val_data=self.dataset.val, tokenizer=self.dataset.tokenizer, final=final)
        for plugin in self.plugins:
            for name, value in plugin(ctx):
                scalars[f"eval/{name}"] = float(value)
        return scalars
