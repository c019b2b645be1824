"""``pretrainx import-hf DIR --workdir W``: a Hugging Face model folder -> a pretrainx run.

The folder holds ``config.json``, the weights as ``model.safetensors`` or shards listed in
``model.safetensors.index.json``, and (optionally) ``tokenizer.json``. The run written to ``W``
is like any other at step 0: ``config.json`` (the family's preset with the checkpoint's shapes),
the tokenizer, and an Orbax checkpoint of the train state, so ``pretrainx sample``, ``eval`` and
``export-hf`` read it and ``train`` continues from it (``init_from.workdir=W``).

The step-0 checkpoint holds the weights and no optimizer state (``opt_state=None``): Adam's two
zero moments would triple the memory and disk of an import, and a run that starts from it
(``init_from``) creates its own. Host memory stays near one copy of the model: each safetensors
file is opened for one tensor at a time (its memory map would otherwise count the whole file as
resident), and Orbax writes the host arrays without its defensive copy (nothing mutates them).
The arrays are placed on a mesh when a run restores them, each process reading its own shards."""
from __future__ import annotations

import json
import logging
import os
import shutil

import jax
import numpy as np
from flax import traverse_util

from pretrainx.errors import UserError
from pretrainx.tools import hf_families

log = logging.getLogger(__name__)

CONFIG = "config.json"
HF_CONFIG = "hf_config.json"   # the imported config.json, kept: export hands back its token ids
TOKEN_ID_KEYS = ("bos_token_id", "eos_token_id", "pad_token_id")
SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
# Tokenizer side files copied verbatim, so an export hands the same special tokens back.
TOKENIZER_SIDE_FILES = ("tokenizer_config.json", "special_tokens_map.json", "generation_config.json")
# Buffers older checkpoints store beside the weights (GPT-2's causal mask): not parameters.
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq")


def read_hf_config(directory: str) -> dict:
    path = os.path.join(directory, CONFIG)
    if not os.path.isfile(path):
        raise hf_families.UnsupportedCheckpoint(f"{directory}: no {CONFIG} (a Hugging Face model "
                                                f"folder holds config.json and *.safetensors)")
    with open(path) as f:
        return json.load(f)


def tensor_files(directory: str) -> dict[str, str]:
    """{tensor name: the safetensors file holding it}, from the index or the single file."""
    from safetensors import safe_open
    index = os.path.join(directory, INDEX)
    if os.path.isfile(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        return {name: os.path.join(directory, file) for name, file in weight_map.items()}
    single = os.path.join(directory, SINGLE)
    if not os.path.isfile(single):
        raise hf_families.UnsupportedCheckpoint(f"{directory}: no {SINGLE} nor {INDEX} (only "
                                                f"safetensors weights are read, not .bin)")
    with safe_open(single, framework="numpy") as f:
        return {name: single for name in f.keys()}


def _canonical(name: str, wanted: set[str]) -> str:
    """A stored name as the rules spell it: the Hub's own GPT-2 has no "transformer." prefix."""
    return name if name in wanted or f"transformer.{name}" not in wanted else f"transformer.{name}"


def read_tensor(file: str, name: str) -> np.ndarray:
    """One tensor, read with the file opened for it alone: while a safetensors file is open
    its memory map keeps every page read so far resident."""
    from safetensors import safe_open
    with safe_open(file, framework="numpy") as f:
        return f.get_tensor(name)


def read_params(directory: str, rules: list, targets: dict) -> dict[str, np.ndarray]:
    """{our parameter path: host array}, each checked against ``targets`` ({path:
    ShapeDtypeStruct}). One Hugging Face tensor at a time is read beside the arrays kept."""
    by_name = {r.hf: r for r in rules}
    params = {}
    for stored, file in tensor_files(directory).items():
        name = _canonical(stored, set(by_name))
        if name not in by_name:
            if not stored.endswith(IGNORED_SUFFIXES):
                log.warning("%s: tensor %s has no place in the model; skipped", file, stored)
            continue
        for path, array in zip(by_name[name].ours, by_name[name].split(read_tensor(file, stored))):
            target = targets[path]
            if array.shape != target.shape:
                raise hf_families.UnsupportedCheckpoint(
                    f"{file}: tensor {stored} gives {path} the shape {array.shape}, the "
                    f"model from config.json has {target.shape}")
            params[path] = np.ascontiguousarray(array.astype(target.dtype, copy=False))
    missing = sorted(set(targets) - set(params))
    if missing:
        raise hf_families.UnsupportedCheckpoint(f"{directory}: no tensor for {missing[0]} (and "
                                                f"{len(missing) - 1} more parameters)")
    return params


def model_fields(hf: dict, family, where: str) -> dict:
    """The family's ``model`` fields of ``hf``; a key the config lacks is one line naming it."""
    try:
        return family.model(hf)
    except KeyError as e:
        raise hf_families.UnsupportedCheckpoint(f"{where} has no {e.args[0]!r}, which a "
                                                f"{hf['model_type']} config.json holds") from None
    except hf_families.UnsupportedCheckpoint as e:
        raise hf_families.UnsupportedCheckpoint(f"{where}: {e}") from None


def run_config(hf: dict, family, workdir: str, has_tokenizer: bool, where: str):
    """The run an imported checkpoint is: the Llama preset's sections with this checkpoint's
    model (float32 compute, so that it computes what the reference does)."""
    from pretrainx.config import base, text
    fields = {f"model.{k}": v for k, v in model_fields(hf, family, where).items()}
    config = base.change(text.llama(), {**fields, "model.dtype": "float32",
                                        "data.seq_len": min(1024, fields["model.max_len"])})
    config.data.tokenizer = os.path.abspath(workdir) if has_tokenizer else "byte"
    return config


def abstract_params(objective, config) -> dict:
    """{parameter path: ShapeDtypeStruct} of the run's model; nothing is allocated."""
    import flax.linen as nn
    target = jax.eval_shape(lambda r: nn.unbox(objective.init(r)), jax.random.PRNGKey(0))
    return traverse_util.flatten_dict(target, sep="/")


def save_weights_only(workdir: str, state) -> None:
    """``state`` (host arrays, no optimizer state) as the run's step-0 checkpoint, in the layout
    core/checkpoint.py reads. Orbax's numpy handler deep-copies every array before an async
    write by default; this synchronous save needs no copy (a second model in memory)."""
    import orbax.checkpoint as ocp
    from pretrainx.data.base import DataState
    from pretrainx.run import rundir
    registry = ocp.type_handlers.create_type_handler_registry(
        (np.ndarray, ocp.type_handlers.NumpyHandler(deepcopy_host_arrays=False)))
    manager = ocp.CheckpointManager(
        os.path.abspath(rundir.path(workdir, rundir.CHECKPOINTS)), item_names=("state", "meta"),
        item_handlers={"state": ocp.PyTreeCheckpointHandler(type_handler_registry=registry,
                                                             use_compression=False),
                       "meta": ocp.JsonCheckpointHandler()},
        options=ocp.CheckpointManagerOptions(enable_async_checkpointing=False))
    meta = {"data": DataState().to_json(), "metrics": {}}
    try:
        manager.save(0, args=ocp.args.Composite(state=ocp.args.PyTreeSave(state),
                                                meta=ocp.args.JsonSave(meta)))
    finally:
        manager.close()


def import_hf(directory: str, workdir: str, overrides: tuple[str, ...] = ()) -> dict:
    """Convert the model folder ``directory`` into the run ``workdir``; returns a summary.
    ``overrides``: ``--config.KEY=VALUE`` changes of the run (its mesh, the data to train on)."""
    from pretrainx import objectives
    from pretrainx.core import checkpoint
    from pretrainx.data import tokenizer as tokenizer_lib
    from pretrainx.run import rundir
    from pretrainx.core.state import TrainState

    if checkpoint.has_checkpoint(workdir):
        raise UserError(f"{workdir} already holds a checkpoint; import into a new workdir")
    hf = read_hf_config(directory)
    where = os.path.join(directory, CONFIG)
    family = hf_families.family_of(hf, where)
    has_tok = os.path.isfile(os.path.join(directory, tokenizer_lib.FILENAME))
    from pretrainx.config import load as config_lib
    config = config_lib.apply_overrides(run_config(hf, family, workdir, has_tok, where),
                                        list(overrides))
    tok = tokenizer_lib.load(directory) if has_tok else None
    objective = objectives.get(config.objective)(config, objectives.DataSpec(tokenizer=tok))
    params = read_params(directory, family.rules(config.model), abstract_params(objective, config))
    host = lambda tree: jax.tree.map(np.asarray, tree)
    state = TrainState(step=np.zeros((), np.int32), params=traverse_util.unflatten_dict(params, sep="/"),
                       opt_state=None, rng=host(jax.random.PRNGKey(config.seed)), ema_params=None,
                       frozen={}, aux=host(objective.init_aux()))
    os.makedirs(workdir, exist_ok=True)
    rundir.write_config(config, workdir)
    shutil.copy(where, os.path.join(workdir, HF_CONFIG))
    if tok is not None:
        tok.save(workdir)
        for name in TOKENIZER_SIDE_FILES:
            if os.path.isfile(os.path.join(directory, name)):
                shutil.copy(os.path.join(directory, name), os.path.join(workdir, name))
    save_weights_only(workdir, state)
    n = int(sum(x.size for x in params.values()))
    return {"model_type": hf["model_type"], "params": n, "workdir": workdir}


def main(argv: list[str]) -> int:
    import argparse
    from pretrainx.config import load as config_lib
    p = argparse.ArgumentParser(prog="pretrainx import-hf",
                                description="a Hugging Face model folder -> a pretrainx run",
                                epilog="--config.KEY=VALUE changes the run written (e.g. "
                                       "--config.mesh.fsdp=4 --config.mesh.tensor=2)")
    p.add_argument("directory", help="holds config.json, *.safetensors and tokenizer.json")
    p.add_argument("--workdir", required=True, help="the run folder to write")
    rest, pairs = config_lib.split_override_args(argv)
    args = p.parse_args(rest)
    summary = import_hf(args.directory, args.workdir, tuple(pairs))
    print(f"imported {summary['model_type']} ({summary['params']:,} parameters) into "
          f"{summary['workdir']}")
    return 0
