"""``pretrainx import-hf DIR --workdir W``: a Hugging Face model folder -> a pretrainx run.

The folder holds ``config.json``, the weights as ``model.safetensors`` or shards listed in
``model.safetensors.index.json``, and (optionally) ``tokenizer.json``. The run written to ``W``
is like any other at step 0: ``config.json`` (the family's preset with the checkpoint's shapes),
the tokenizer, and an Orbax checkpoint of the whole train state, so ``pretrainx sample`` and
``eval`` read it and ``train`` continues from it (``init_from.workdir=W``).

Tensors are read one at a time with safetensors' numpy API and each is placed on its sharding
as soon as it is read: the host never holds a second full copy of the model.
"""
from __future__ import annotations

import json
import logging
import os
import shutil

import jax
import jax.numpy as jnp
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


def read_params(directory: str, rules: list, targets: dict) -> dict:
    """{our parameter path: jax.Array placed on its sharding}. ``targets``: {path:
    ShapeDtypeStruct with sharding}. One Hugging Face tensor is in host memory at a time."""
    from safetensors import safe_open
    by_name = {r.hf: r for r in rules}
    files = {}
    for stored, file in tensor_files(directory).items():
        files.setdefault(file, []).append((stored, _canonical(stored, set(by_name))))
    placed = {}
    for file, names in files.items():
        with safe_open(file, framework="numpy") as f:
            for stored, name in names:
                if name not in by_name:
                    if not stored.endswith(IGNORED_SUFFIXES):
                        log.warning("%s: tensor %s has no place in the model; skipped", file, stored)
                    continue
                rule = by_name[name]
                for path, array in zip(rule.ours, rule.split(f.get_tensor(stored))):
                    target = targets[path]
                    if array.shape != target.shape:
                        raise hf_families.UnsupportedCheckpoint(
                            f"{file}: tensor {stored} gives {path} the shape {array.shape}, the "
                            f"model from config.json has {target.shape}")
                    placed[path] = jax.device_put(array.astype(target.dtype), target.sharding)
    missing = sorted(set(targets) - set(placed))
    if missing:
        raise hf_families.UnsupportedCheckpoint(f"{directory}: no tensor for {missing[0]} (and "
                                                f"{len(missing) - 1} more parameters)")
    return placed


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


def initial_state(objective, config):
    """(the abstract TrainState with its shardings, the optimizer factory) of a run."""
    from pretrainx.core import optim, sharding, state as state_lib
    mesh = sharding.make_mesh(config.mesh)
    tx_factory = lambda p: optim.make_optimizer(config.optimizer, p)[0]
    target = state_lib.abstract_train_state(objective, tx_factory, ema=False, mesh=mesh,
                                            axis_rules=sharding.rules(config.sharding))
    return target, tx_factory


def import_hf(directory: str, workdir: str, overrides: tuple[str, ...] = ()) -> dict:
    """Convert the model folder ``directory`` into the run ``workdir``; returns a summary.
    ``overrides``: ``--config.KEY=VALUE`` changes of the run (its mesh, the data to train on)."""
    from pretrainx import objectives
    from pretrainx.core import checkpoint
    from pretrainx.data import tokenizer as tokenizer_lib
    from pretrainx.data.base import DataState
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
    target, tx_factory = initial_state(objective, config)
    targets = traverse_util.flatten_dict(target.params, sep="/")
    params = traverse_util.unflatten_dict(read_params(directory, family.rules(config.model), targets),
                                          sep="/")
    tx = tx_factory(params)
    opt_state = jax.jit(tx.init, out_shardings=jax.tree.map(lambda s: s.sharding, target.opt_state))(params)
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state,
                       rng=jax.random.PRNGKey(config.seed), ema_params=None,
                       frozen=jax.tree.map(jnp.zeros_like, target.frozen),
                       aux=jax.tree.map(jnp.asarray, objective.init_aux()))
    os.makedirs(workdir, exist_ok=True)
    rundir.write_config(config, workdir)
    shutil.copy(where, os.path.join(workdir, HF_CONFIG))
    if tok is not None:
        tok.save(workdir)
        for name in TOKENIZER_SIDE_FILES:
            if os.path.isfile(os.path.join(directory, name)):
                shutil.copy(os.path.join(directory, name), os.path.join(workdir, name))
    saver = checkpoint.Checkpointer(workdir, config.checkpoint)
    saver.save(0, state, DataState())
    saver.close()
    n = int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))
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
