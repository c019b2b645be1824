"""``pretrainx export-hf --workdir W --out DIR``: a pretrainx decoder run -> a Hugging Face
model folder (``model.safetensors``, ``config.json``, the tokenizer files) that transformers'
``AutoModelForCausalLM`` and ``AutoTokenizer`` load. GPT-2-shaped runs export as GPT-2,
RoPE + RMSNorm + SwiGLU runs as Llama (Qwen2 when q/k/v carry biases); see hf_families.py.
A LoRA run (``config.lora.rank`` > 0) exports its adapters merged into the base kernels,
W + (alpha / r) A B: the weights it trained with, as ``TrainState.eval_params`` gives them.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil

import jax
import numpy as np
from flax import traverse_util

from pretrainx.tools import hf_families, hf_import
from pretrainx.data import special_tokens as st


def flat_params(params) -> dict[str, np.ndarray]:
    """{"h_0/attn/query/kernel": host array}, each gathered from its shards."""
    return {name: np.asarray(jax.device_get(leaf))
            for name, leaf in traverse_util.flatten_dict(params, sep="/").items()}


def hf_tensors(model_config, params) -> tuple[dict[str, np.ndarray], dict]:
    """(the Hugging Face tensors, config.json) of a decoder's parameters."""
    family = hf_families.family_for_export(model_config)
    flat = flat_params(params)
    rules = family.rules(model_config)
    tensors = {r.hf: np.ascontiguousarray(r.join([flat[p] for p in r.ours])) for r in rules}
    return tensors, family.config(model_config)


def special_token_ids(workdir: str) -> dict:
    """bos/eos/pad ids of the config.json an import kept (None each without one: transformers'
    defaults, e.g. GPT-2's 50256, need not exist in this vocabulary)."""
    path = os.path.join(workdir, hf_import.HF_CONFIG)
    kept = {}
    if os.path.isfile(path):
        with open(path) as f:
            kept = json.load(f)
    return {key: kept.get(key) for key in hf_import.TOKEN_ID_KEYS}


#: transformers' special-token role -> pretrainx's spelling of that token
ROLE_TOKENS = {"bos": st.BOS, "eos": st.EOS, "pad": st.PAD, "unk": st.UNK, "mask": st.MASK,
               "cls": st.CLS, "sep": st.SEP}


def write_tokenizer(workdir: str, out: str) -> None:
    """tokenizer.json, and the side files an import kept (special tokens); without them a
    minimal tokenizer_config.json names the fast tokenizer class."""
    from tokenizers import Tokenizer
    from pretrainx.data import tokenizer as tokenizer_lib
    source = os.path.join(workdir, tokenizer_lib.FILENAME)
    if not os.path.isfile(source):
        return
    with open(source) as f:
        if "pretrainx_kind" in json.load(f):
            raise hf_families.UnsupportedCheckpoint(
                f"{source} is a pretrainx char/byte vocabulary, not a Hugging Face tokenizer; "
                f"export the weights with a subword tokenizer run")
    with open(source) as f:
        data = json.load(f)
    # the special tokens an import renamed get their published names back (same ids)
    vocab = Tokenizer.from_str(json.dumps(data)).token_to_id
    renames = {hf_import.RENAMED_ROLES[role]: text
               for role, text in hf_import.special_token_roles(workdir).items()
               if vocab(text) is None and vocab(hf_import.RENAMED_ROLES[role]) is not None}
    with open(os.path.join(out, tokenizer_lib.FILENAME), "w") as f:
        json.dump(hf_import.renamed_tokens(data, renames), f, ensure_ascii=False)
    for name in hf_import.TOKENIZER_SIDE_FILES:
        if os.path.isfile(os.path.join(workdir, name)):
            shutil.copy(os.path.join(workdir, name), os.path.join(out, name))
    if not os.path.isfile(os.path.join(out, "tokenizer_config.json")):
        # the roles of the special tokens this vocabulary holds: without an eos_token,
        # lm-evaluation-harness's HF backend cannot condition an empty context
        roles = {f"{role}_token": text for role, text in ROLE_TOKENS.items() if vocab(text) is not None}
        with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
            json.dump({"tokenizer_class": "PreTrainedTokenizerFast", **roles}, f, indent=2)


def export_hf(workdir: str, out: str, which: str = "latest") -> dict:
    """Write the run ``workdir``'s ``which`` checkpoint to the folder ``out``."""
    from safetensors.numpy import save_file
    from pretrainx.core import inference

    _, ctx, config = inference.load_trained_run(workdir, which)   # LoRA: merged already
    tensors, hf_config = hf_tensors(config.model, ctx.params)
    hf_config.update(special_token_ids(workdir))
    os.makedirs(out, exist_ok=True)
    # "format": "pt" is what transformers checks before it reads a safetensors file
    save_file(tensors, os.path.join(out, hf_import.SINGLE), metadata={"format": "pt"})
    with open(os.path.join(out, hf_import.CONFIG), "w") as f:
        json.dump(hf_config, f, indent=2)
    write_tokenizer(workdir, out)
    return {"model_type": hf_config["model_type"], "tensors": len(tensors), "out": out}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="pretrainx export-hf",
                                description="a run -> a Hugging Face model folder")
    p.add_argument("--workdir", required=True)
    p.add_argument("--out", required=True, help="the folder to write")
    p.add_argument("--checkpoint", default="latest", choices=("latest", "best"))
    args = p.parse_args(argv)
    summary = export_hf(args.workdir, args.out, args.checkpoint)
    print(f"exported {args.workdir} as {summary['model_type']} ({summary['tensors']} tensors) "
          f"to {summary['out']}")
    return 0
