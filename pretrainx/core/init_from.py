"""``config.init_from``: start a run from another run's arrays (fine-tuning, a reference policy, a
value head on a pretrained trunk).

    c.init_from.workdir = "workdirs/gpt"    # the other run; "" starts from scratch
    c.init_from.step = "latest"             # "latest" | "best" | a step number ("2000")
    c.init_from.mapping = (("params", "params"),)   # (source subtree, target subtree) pairs

A source path starts with ``params``, ``ema_params`` or ``frozen`` (the other run's state); a
target path with ``params`` or ``frozen`` (this run's), e.g. ``(("params", "params/backbone"),
("params", "frozen/reference"))`` puts a language model under a new head and keeps a frozen copy
as the reference policy. Before mapping, the objective's ``adapt_init_from(source, target)`` may
do head surgery (drop the old head, build a new one). Every source array must find a place of
the same shape (else a one-line error names it); target arrays no source fills keep their fresh
initialisation, and the log lists them.

Several runs: ``init_from.also.NAME`` holds further (workdir, step, mapping) sources, applied
after the main one in name order, e.g. ``c.init_from.also.reward.workdir = "workdirs/rm"`` with
``mapping = (("params", "frozen/reward"),)`` (``InitFrom.all_from_config``).

Before anything is read, ``check_source`` compares the source run's ``config.json`` and saved
tokenizer with this run (``MODEL_KEYS``, the tokenizer's token strings, the section's ``agree``
pairs) and refuses a source that is still training unless ``step`` names a step (then it waits
for that step). ``apply`` refuses to load nothing: a mapping that fills no array is an error.

A LoRA run as the source gives its "params" with the adapters merged into its base (the model it
trained); this run's own LoRA setting decides how they load (``apply``: into the base).

Applied only when the run's workdir has no checkpoint of its own: a resumed run restores its own
state and never reads the other run again (``train.run``).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time

import jax
import numpy as np
import orbax.checkpoint as ocp

from pretrainx.core import checkpoint as checkpoint_lib, lora as lora_lib
from pretrainx.data import tokenizer as tokenizer_lib
from pretrainx.errors import UserError
from pretrainx.run import lock as lock_lib, rundir

log = logging.getLogger(__name__)

SOURCE_ROOTS = ("params", "ema_params", "frozen")
TARGET_ROOTS = ("params", "frozen")
# The model fields that decide what a loaded array means: a source that differs in one of them
# is another model (a BERT under a GPT head, 2 layers under 4), even where some shapes agree.
MODEL_KEYS = ("arch", "name", "vocab_size", "embed_dim", "num_layers", "num_decoder_layers",
              "num_heads", "num_kv_heads", "head_size", "mlp_dim", "mlp_activation", "rope",
              "tie_embeddings", "use_bias", "image_shape", "ch", "ch_mult", "num_res_blocks",
              "attn_resolutions", "norm_groups", "patch_size", "hidden_size", "depth", "mlp_ratio")
WAIT_POLL_S = 2.0            # how often a named step of a running source is looked for


class InitFromError(UserError):
    pass


@dataclasses.dataclass(frozen=True)
class InitFrom:
    workdir: str
    step: str = "latest"
    mapping: tuple[tuple[str, str], ...] = (("params", "params"),)
    agree: tuple[tuple[str, str], ...] = ()   # (source run's key, this run's key) to be equal

    @classmethod
    def from_config(cls, config) -> "InitFrom | None":
        return cls.from_section(config.init_from)

    @classmethod
    def from_section(cls, c) -> "InitFrom | None":
        """An ``init_from`` section (workdir, step, mapping); None when its workdir is ""."""
        if not c.workdir:
            return None
        mapping = tuple((str(s), str(d)) for s, d in c.mapping)
        for src, dst in mapping:
            if src.split("/")[0] not in SOURCE_ROOTS or dst.split("/")[0] not in TARGET_ROOTS:
                raise InitFromError(f"init_from.mapping pair ({src!r}, {dst!r}): a source starts "
                                    f"with one of {SOURCE_ROOTS}, a target with one of {TARGET_ROOTS}")
        agree = tuple((str(s), str(d)) for s, d in c.agree)
        return cls(str(c.workdir), str(c.step), mapping, agree)

    @classmethod
    def all_from_config(cls, config) -> "list[InitFrom]":
        """The main source and, in name order, every ``init_from.also.NAME`` source (same fields:
        workdir, step, mapping) with a workdir set: a stage that loads several runs (PPO takes
        its policy from one and its reward model from another) applies them in turn."""
        sources = [cls.from_config(config)]
        also = config.init_from.also
        for name in sorted(also):
            sources.append(cls.from_section(also[name]))
        return [s for s in sources if s is not None]


def _step_dir(workdir: str, step: str) -> tuple[str, int]:
    """The checkpoint folder of ``step`` ("latest", "best" or a number) in ``workdir``."""
    def steps(sub):
        d = os.path.join(workdir, sub)
        return sorted(int(s) for s in os.listdir(d) if s.isdigit()) if os.path.isdir(d) else []
    if not os.path.isdir(workdir):
        raise InitFromError(f"init_from.workdir {workdir!r} does not exist")
    if step in ("latest", "best"):
        sub = rundir.CHECKPOINTS if step == "latest" else rundir.CHECKPOINTS_BEST
        found = steps(sub)
        if not found:
            raise InitFromError(f"init_from: no checkpoint in {os.path.join(workdir, sub)}")
        return os.path.join(workdir, sub, str(found[-1])), found[-1]
    if not step.isdigit():
        raise InitFromError(f"init_from.step must be 'latest', 'best' or a step number, got {step!r}")
    for sub in (rundir.CHECKPOINTS, rundir.CHECKPOINTS_BEST):
        if int(step) in steps(sub):
            return os.path.join(workdir, sub, step), int(step)
    raise InitFromError(f"init_from: no checkpoint of step {step} in {workdir} (have "
                        f"{steps(rundir.CHECKPOINTS) + steps(rundir.CHECKPOINTS_BEST)})")


def check_source(opts: InitFrom, config, tokenizer) -> None:
    """Refuse a source whose arrays would mean something else here, before reading any: another
    model (``MODEL_KEYS`` of its config.json), another vocabulary (its saved tokenizer's token
    strings must start this run's), a setting this run relies on (``agree``); and a source that
    is still training, unless ``step`` names a step (then wait for that step)."""
    if not os.path.isdir(opts.workdir):
        raise InitFromError(f"init_from.workdir {opts.workdir!r} does not exist")
    _wait_if_training(opts)
    saved = rundir.read_config(opts.workdir)
    if saved is None:
        log.warning("init_from: %s has no %s: its model and settings cannot be checked",
                    opts.workdir, rundir.CONFIG)
    else:
        theirs, ours = rundir.flatten(saved), rundir.flatten(json.loads(config.to_json()))
        pairs = [(f"model.{k}", f"model.{k}") for k in MODEL_KEYS] + list(opts.agree)
        differ = [f"{s}={theirs[s]!r} there, {d}={ours[d]!r} here" for s, d in pairs
                  if s in theirs and d in ours and not rundir.same_value(theirs[s], ours[d])]
        differ += [f"{s} missing there" for s, d in opts.agree if s not in theirs]
        if differ:
            raise InitFromError(f"init_from: {opts.workdir} was trained with other settings than "
                                f"this run relies on ({'; '.join(differ[:4])}); load a matching "
                                f"run or set this run's fields to the source's")
    _check_tokenizer(opts.workdir, tokenizer)


def _check_tokenizer(workdir: str, tokenizer) -> None:
    """The same ids must be the same strings: the source's token strings start this run's (this
    run may append special tokens). Sizes alone would pass two char sets of one length."""
    file = rundir.path(workdir, tokenizer_lib.FILENAME)
    if tokenizer is None or not os.path.exists(file):
        return                       # an image run, or a source that saved no tokenizer
    theirs, ours = tokenizer_lib.load(file).token_strings(), tokenizer.token_strings()
    if ours[:len(theirs)] == theirs:
        return
    if len(ours) < len(theirs):
        where = f"it has {len(theirs)} tokens, this run {len(ours)}"
    else:
        i = next(i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b)
        where = f"id {i} is {theirs[i]!r} there and {ours[i]!r} here"
    raise InitFromError(f"init_from: the tokenizer of {workdir} is not this run's ({where}); "
                        f"use it here with --config.data.tokenizer={workdir}")


def _wait_if_training(opts: InitFrom) -> None:
    """A running source's "latest" is whatever it saved last and may vanish (checkpoint.keep):
    refused. A named step is waited for until it is saved (or the source stops)."""
    holder = lock_lib.holder_if_held(opts.workdir)
    if holder is None:
        return
    who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
    if not opts.step.isdigit():
        raise InitFromError(
            f"init_from: {opts.workdir} is still training ({who}); wait for it to finish, or name "
            f"one of its steps with init_from.step=N to start from that step")
    log.warning("init_from: %s is still training (%s): waiting for its step %s", opts.workdir,
                who, opts.step)
    while lock_lib.holder_if_held(opts.workdir) is not None:
        if _saved_steps(opts.workdir).count(int(opts.step)):
            return
        time.sleep(WAIT_POLL_S)


def _saved_steps(workdir: str) -> list[int]:
    return [int(s) for sub in (rundir.CHECKPOINTS, rundir.CHECKPOINTS_BEST)
            for s in rundir.kept_checkpoint_steps(os.path.join(workdir, sub))]


def _read_numpy(directory: str, roots: list[str] | None) -> dict:
    """The subtrees ``roots`` of the pytree checkpoint in ``directory`` (all when None), as numpy
    arrays on the host: no sharding of the other run is needed to read them."""
    checkpointer = ocp.PyTreeCheckpointer()
    try:
        tree = checkpointer.metadata(directory).item_metadata.tree
        wanted = {r: tree[r] for r in (roots or tree) if tree.get(r) is not None}
        item = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), wanted)
        restore_args = jax.tree.map(lambda m: ocp.RestoreArgs(restore_type=np.ndarray), wanted)
        return checkpointer.restore(directory, args=ocp.args.PyTreeRestore(
            item=item, restore_args=restore_args, partial_restore=True))
    finally:
        checkpointer.close()


def read_source(opts: InitFrom) -> tuple[dict, int]:
    """({root: numpy tree} for the roots the mapping reads, the step read)."""
    step_dir, step = _step_dir(opts.workdir, opts.step)
    roots = sorted({src.split("/")[0] for src, _ in opts.mapping})
    # absolute: Orbax's metadata() of a relative path finds no tree (init_from.workdir="workdirs/x")
    try:
        source = _read_numpy(os.path.abspath(os.path.join(step_dir, "state")),
                             [r for r in roots if r != "frozen"])
    except Exception:   # noqa: BLE001 - a step vanishing under the reader is told apart below
        if os.path.isdir(step_dir):
            raise
        raise InitFromError(f"init_from: step {step} of {opts.workdir} was deleted while it was "
                            f"read (that run rotates its checkpoints); name a step it keeps, "
                            f"e.g. a checkpoints_best one") from None
    if "frozen" in roots:
        frozen_dir = os.path.join(opts.workdir, checkpoint_lib.FROZEN_DIR)
        if not os.path.isdir(frozen_dir):
            raise InitFromError(f"init_from: {opts.workdir} has no frozen parameters to read")
        source["frozen"] = _read_numpy(os.path.abspath(frozen_dir), None)
    missing = [r for r in roots if r not in source]
    if missing:
        raise InitFromError(f"init_from: the checkpoint {step_dir} has no {missing[0]!r}")
    return _merged_lora(source, opts.workdir), step


def _merged_lora(source: dict, workdir: str) -> dict:
    """A LoRA run's "params" / "ema_params" as the model saw them (its adapters merged into its
    frozen base): the next stage loads the fine-tuned model, whatever its own LoRA setting."""
    if rundir.read_config(workdir) is None:
        return source
    spec = lora_lib.LoraSpec.from_config(rundir.load_config(workdir))
    trained = [r for r in ("params", "ema_params") if r in source]
    if spec is None or not trained:
        return source
    frozen_dir = os.path.abspath(os.path.join(workdir, checkpoint_lib.FROZEN_DIR))
    base = _read_numpy(frozen_dir, [lora_lib.BASE])[lora_lib.BASE]
    merged = {r: jax.tree.map(np.asarray, lora_lib.merge(source[r], base, spec.scale))
              for r in trained}
    return {**source, **merged}


def _subtree(tree, path: str, what: str):
    node = tree
    for part in path.split("/"):
        if not isinstance(node, dict) or part not in node:
            known = sorted(node) if isinstance(node, dict) else []
            raise InitFromError(f"init_from: {what} has no {path!r} ({part!r} not among {known})")
        node = node[part]
    return node


def _leaves(tree, prefix: str) -> dict:
    """'a/b/c' path -> leaf, for a nested dict (a leaf itself gets ``prefix``)."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join([prefix] + [str(getattr(k, "key", k)) for k in path]): leaf
            for path, leaf in flat}


def plan(source: dict, target: dict, mapping) -> dict[str, np.ndarray]:
    """Target path -> source array for every mapped leaf; one-line errors for a source array
    with no place and for a shape mismatch."""
    assigned = {}
    target_leaves = _leaves(target, "")
    for src, dst in mapping:
        _subtree(target, dst, "this run")
        for src_path, array in _leaves(_subtree(source, src, "the source run"), src).items():
            dst_path = "/" + dst + src_path[len(src):]
            if dst_path not in target_leaves:
                raise InitFromError(
                    f"init_from: {src_path} has no place in this run ({dst_path.lstrip('/')} does "
                    f"not exist); drop or rename it in the objective's adapt_init_from")
            want = target_leaves[dst_path]
            if tuple(array.shape) != tuple(want.shape):
                raise InitFromError(
                    f"init_from: {src_path} has shape {tuple(array.shape)} in the source run but "
                    f"{dst_path.lstrip('/')} is {tuple(want.shape)} here")
            assigned[dst_path] = array
    return assigned


def apply(state, objective, opts: InitFrom):
    """``state`` with the mapped arrays of the other run in place (same shardings). With LoRA
    the mapping sees the objective's own tree (``lora.join``): "params" loads the base weights
    and the fully trained heads; the adapters keep their fresh (zero-update) start."""
    source, step = read_source(opts)
    params, frozen = _objective_view(state)
    abstract = lambda t: jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), t)
    target = {"params": abstract(params), "frozen": abstract(frozen)}
    source = objective.adapt_init_from(source, target)
    assigned = plan(source, target, opts.mapping)
    if not assigned:   # else the run would train from scratch with only an INFO line
        raise InitFromError(
            f"init_from: no array of {opts.workdir} (step {step}) has a place in this run: the "
            f"mapping {list(opts.mapping)} loads nothing once the objective has dropped what does "
            f"not fit; is it a run of another model family?")

    def place(tree, root):
        flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
        out = []
        for path, leaf in flat:
            key = "/" + "/".join([root] + [str(getattr(k, "key", k)) for k in path])
            if key in assigned:
                host = np.asarray(assigned[key], dtype=leaf.dtype)
                leaf = jax.make_array_from_callback(leaf.shape, leaf.sharding, lambda i, h=host: h[i])
            out.append(leaf)
        return jax.tree_util.tree_unflatten(treedef, out)

    params, frozen = place(params, "params"), place(frozen, "frozen")
    fresh = [k for k in _leaves(target, "") if k not in assigned]
    log.info("init_from: %d arrays from %s (step %d); %d keep their fresh init%s", len(assigned),
             opts.workdir, step, len(fresh), f": {', '.join(fresh[:8])}" if fresh else "")
    state = _state_of_view(state, params, frozen)
    ema = jax.tree.map(lambda x: x.copy(), state.params) if state.ema_params is not None else None
    return state.replace(ema_params=ema)


def _objective_view(state) -> tuple[dict, dict]:
    """(params, frozen) as the objective made them: with LoRA, the base and the fully trained
    paths joined into one tree, and the frozen trees without the base."""
    if state.lora is None:
        return state.params, state.frozen
    frozen = {k: v for k, v in state.frozen.items() if k != lora_lib.BASE}
    return lora_lib.join(state.params, state.frozen[lora_lib.BASE]), frozen


def _state_of_view(state, params, frozen):
    """``_objective_view``'s inverse: the loaded trees back in the state's own layout."""
    if state.lora is None:
        return state.replace(params=params, frozen=frozen)
    trainable, base = lora_lib.separate(params, state.params)
    return state.replace(params=trainable, frozen={**frozen, lora_lib.BASE: base})
