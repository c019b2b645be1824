"""A finished (or running) run's objective and trained weights, for ``sample``, ``eval``, the
coupling generator and the RLHF tools. Its own module so those tools need not import the CLI."""
from __future__ import annotations

import os


def objective_of(workdir: str):
    """(objective, config) of a run, built from its ``config.json`` and saved tokenizer (no
    weights): what ``pretrainx sample`` asks for its flags before restoring anything."""
    from pretrainx import objectives
    from pretrainx.data import tokenizer as tokenizer_lib
    from pretrainx.run import rundir

    config = rundir.load_config(workdir)
    objective_cls = objectives.get(config.objective)
    tok_path = rundir.path(workdir, tokenizer_lib.FILENAME)
    tok = tokenizer_lib.load(tok_path) if os.path.exists(tok_path) else None
    return objective_cls(config, objectives.DataSpec(tokenizer=tok)), config


def fields_not_saved(workdir: str, which: str) -> list[str]:
    """The optional state fields ("opt_state", "ema_params") the newest "latest"/"best"
    checkpoint saved as None: an imported run's step 0 (tools/hf_import.py) holds the weights
    alone, and sampling or evaluating needs no more."""
    import orbax.checkpoint as ocp
    from pretrainx.run import rundir
    directory = rundir.path(workdir, {"latest": rundir.CHECKPOINTS, "best": rundir.CHECKPOINTS_BEST}[which])
    steps = sorted(int(s) for s in os.listdir(directory) if s.isdigit()) if os.path.isdir(directory) else []
    if not steps:
        return []           # nothing to restore: the restore itself says so
    state_dir = os.path.abspath(os.path.join(directory, str(steps[-1]), "state"))
    from pretrainx.core.checkpoint import reader_notices_dropped
    with reader_notices_dropped():
        saved = ocp.PyTreeCheckpointer().metadata(state_dir).item_metadata.tree
    return [name for name in ("opt_state", "ema_params") if saved.get(name) is None]


def load_trained_run(workdir: str, which: str):
    """(objective, EvalContext holding the run's trained weights, config), for ``sample`` and
    ``eval``; ``which``: the "latest" or the "best" checkpoint."""
    import jax
    from pretrainx.core import checkpoint, optim, sharding, state as state_lib
    from pretrainx.objectives.base import EvalContext
    from pretrainx.run import rundir

    objective, config = objective_of(workdir)
    tok = objective.tokenizer
    try:
        mesh = sharding.make_mesh(config.mesh)
    except ValueError:      # fewer devices than the run had: sample on what is here
        mesh = sharding.make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
    target = state_lib.abstract_train_state(
        objective, lambda p: optim.make_optimizer(config.optimizer, p)[0],
        ema=float(config.optimizer.ema_decay) > 0, mesh=mesh, axis_rules=sharding.rules(config.sharding))
    target = target.replace(**{name: None for name in fields_not_saved(workdir, which)})
    state, _, step = checkpoint.restore_state_readonly(workdir, which, target)
    ctx = EvalContext(params=state.eval_params(), frozen=state.frozen, step=step, workdir=workdir,
                      rng=jax.random.PRNGKey(0), mesh=mesh, val_data=None, tokenizer=tok,
                      aux=state.aux, samples_dir=rundir.path(workdir, rundir.SAMPLES))
    return objective, ctx, config
