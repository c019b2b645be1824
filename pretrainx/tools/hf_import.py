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

import contextlib
import json
import logging
import os
import shutil

import jax
import numpy as np
from flax import traverse_util

from pretrainx.data import special_tokens as st
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
# The special tokens objectives look up by pretrainx's names (data/special_tokens.py), by their
# role in the tokenizer's side files. BOS/EOS keep their text: a decoder's one "<|endoftext|>"
# plays both, and text holding it must still encode to it.
RENAMED_ROLES = {"pad_token": st.PAD, "unk_token": st.UNK, "cls_token": st.CLS, "sep_token": st.SEP,
                 "mask_token": st.MASK}
# Buffers older checkpoints store beside the weights (GPT-2's causal mask): not parameters.
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq")


def read_json(path: str):
    """A JSON file of the folder; not JSON -> one line naming the file, the line and column."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        at = f":{e.lineno}:{e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        raise hf_families.UnsupportedCheckpoint(f"{path}{at}: not a JSON file "
                                                f"({getattr(e, 'msg', e)})") from None


@contextlib.contextmanager
def open_safetensors(file: str):
    """``safe_open(file)``; a file that is no safetensors (cut short, not one) -> one line."""
    from safetensors import SafetensorError, safe_open
    try:
        f = safe_open(file, framework="numpy")
    except SafetensorError as e:
        raise hf_families.UnsupportedCheckpoint(f"{file}: not a readable safetensors file "
                                                f"({e})") from None
    with f:
        yield f


def special_token_roles(directory: str) -> dict[str, str]:
    """{role ("pad_token", ...): the token's text} from the tokenizer side files a folder holds."""
    roles = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        if os.path.isfile(os.path.join(directory, name)):
            for role, token in read_json(os.path.join(directory, name)).items():
                token = token.get("content") if isinstance(token, dict) else token
                if role in RENAMED_ROLES and isinstance(token, str):
                    roles[role] = token
    return roles


def renamed_tokens(tokenizer_json: dict, renames: dict[str, str]) -> dict:
    """``tokenizer_json`` (tokenizer.json's content) with the tokens ``renames`` names renamed,
    every id kept: in the added tokens, the vocabulary (WordPiece/BPE dict, Unigram list) and
    the model's unknown token."""
    out = json.loads(json.dumps(tokenizer_json))
    for token in out.get("added_tokens", []):
        token["content"] = renames.get(token["content"], token["content"])
    model = out["model"]
    if isinstance(model.get("vocab"), dict):
        model["vocab"] = {renames.get(k, k): v for k, v in model["vocab"].items()}
    elif isinstance(model.get("vocab"), list):
        model["vocab"] = [[renames.get(piece, piece), score] for piece, score in model["vocab"]]
    if isinstance(model.get("unk_token"), str):
        model["unk_token"] = renames.get(model["unk_token"], model["unk_token"])
    return out


def import_tokenizer(directory: str):
    """The folder's tokenizer, its special tokens renamed to pretrainx's names where they differ
    (T5's "<pad>" becomes "[PAD]", same id): objectives look them up by those names. A token
    with two roles keeps its text. Export renames them back (hf_export.write_tokenizer)."""
    from tokenizers import Tokenizer
    from pretrainx.data.subword import SubwordTokenizer
    data = read_json(os.path.join(directory, "tokenizer.json"))
    has = Tokenizer.from_str(json.dumps(data)).token_to_id
    roles = special_token_roles(directory)
    texts = list(roles.values())
    renames = {text: RENAMED_ROLES[role] for role, text in roles.items()
               if texts.count(text) == 1 and has(text) is not None and has(RENAMED_ROLES[role]) is None}
    return SubwordTokenizer(Tokenizer.from_str(json.dumps(renamed_tokens(data, renames))))


def read_hf_config(directory: str) -> dict:
    path = os.path.join(directory, CONFIG)
    if not os.path.isfile(path):
        raise hf_families.UnsupportedCheckpoint(f"{directory}: no {CONFIG} (a Hugging Face model "
                                                f"folder holds config.json and *.safetensors)")
    return read_json(path)


def tensor_files(directory: str) -> dict[str, str]:
    """{tensor name: the safetensors file holding it}, from the index or the single file."""
    index = os.path.join(directory, INDEX)
    if os.path.isfile(index):
        weight_map = read_json(index)["weight_map"]
        return {name: os.path.join(directory, file) for name, file in weight_map.items()}
    single = os.path.join(directory, SINGLE)
    if not os.path.isfile(single):
        raise hf_families.UnsupportedCheckpoint(f"{directory}: no {SINGLE} nor {INDEX} (only "
                                                f"safetensors weights are read, not .bin)")
    with open_safetensors(single) as f:
        return {name: single for name in f.keys()}


def _canonical(name: str, wanted: set[str]) -> str:
    """A stored name as the rules spell it: the Hub's own GPT-2 has no "transformer." prefix."""
    return name if name in wanted or f"transformer.{name}" not in wanted else f"transformer.{name}"


def read_tensor(file: str, name: str) -> np.ndarray:
    """One tensor, read with the file opened for it alone: while a safetensors file is open
    its memory map keeps every page read so far resident."""
    with open_safetensors(file) as f:
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


def model_fields(hf: dict, family, where: str, names=frozenset()) -> dict:
    """The family's ``model`` fields of ``hf`` (whose checkpoint stores the tensors ``names``);
    a key the config lacks is one line naming it."""
    try:
        return family.model(hf, names)
    except KeyError as e:
        raise hf_families.UnsupportedCheckpoint(f"{where} has no {e.args[0]!r}, which a "
                                                f"{hf['model_type']} config.json holds") from None
    except hf_families.UnsupportedCheckpoint as e:
        raise hf_families.UnsupportedCheckpoint(f"{where}: {e}") from None


def run_config(hf: dict, family, workdir: str, has_tokenizer: bool, where: str, names=frozenset()):
    """The run an imported checkpoint is: the family's preset (config/text.py, with its
    objective) and this checkpoint's model, computed in float32 as the reference computes."""
    from pretrainx.config import base, sections, text
    fields = {f"model.{k}": v for k, v in model_fields(hf, family, where, names).items()}
    config = base.change(getattr(text, family.preset)(), {
        **fields, "model.dtype": "float32", "data.seq_len": min(1024, fields["model.max_len"])})
    if family.section:
        config[family.section] = getattr(sections, family.section)()
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
    lora = [pair.split("=")[0] for pair in overrides if pair.startswith("lora.")]
    if lora:   # the saved state holds full weights, not adapters + a base
        raise UserError(f"import-hf writes the checkpoint's full weights; lora.* belongs to the run "
                        f"that fine-tunes them (its config sets init_from.workdir to this import "
                        f"and lora.rank): drop --config.{lora[0]} here")
    hf = read_hf_config(directory)
    where = os.path.join(directory, CONFIG)
    family = hf_families.family_of(hf, where)
    has_tok = os.path.isfile(os.path.join(directory, tokenizer_lib.FILENAME))
    from pretrainx.config import load as config_lib
    # the tensor names (T5's head is untied when lm_head.weight is stored); a folder without
    # weights is told so by read_params, after config.json's own checks
    has_weights = any(os.path.isfile(os.path.join(directory, f)) for f in (SINGLE, INDEX))
    names = frozenset(tensor_files(directory)) if has_weights else frozenset()
    config = config_lib.apply_overrides(run_config(hf, family, workdir, has_tok, where, names),
                                        list(overrides))
    tok = import_tokenizer(directory) if has_tok else None
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
