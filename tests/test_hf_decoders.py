"""Hugging Face GPT-2 / Llama / Qwen2 checkpoints in and out, against transformers itself.

Each case makes a tiny random checkpoint with transformers (tests/hf_checkpoints.py), imports it
with ``pretrainx import-hf``, and checks: the logits of a batch within 1e-4 relative
(max |ours - ref| / max |ref|), 32 greedy tokens through our KV cache equal to
``generate(do_sample=False)``, the tokenizer's ids, and then ``export-hf``: transformers loads
the export and computes the same logits, and import -> export -> import is bit-exact.
"""
import json
import os

import numpy as np
import pytest
from safetensors.numpy import load_file

from pretrainx import main
from pretrainx.core import inference
from pretrainx.data import tokenizer as tokenizer_lib
from pretrainx.models import decoding, gpt, transformer
from pretrainx.tools import hf_export
from tests import hf_checkpoints as hfc

CASES = {
    "gpt2": ("gpt2", {}),
    # GQA (4 query / 2 kv heads), tied head, Llama 3's base and frequency scaling
    "llama_gqa_tied_llama3": ("llama", dict(
        num_key_value_heads=2, tie_word_embeddings=True,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 64})),
    "llama_mha_untied": ("llama", dict(num_key_value_heads=4, tie_word_embeddings=False,
                                       rope_parameters={"rope_type": "default",
                                                        "rope_theta": 20000.0})),
    # Qwen2: biases on q/k/v only (made random by hf_checkpoints), RoPE base 1e6
    "qwen2_bias": ("qwen2", dict(num_key_value_heads=2, tie_word_embeddings=False,
                                 rope_parameters={"rope_type": "default", "rope_theta": 1e6})),
}


def _cli(*argv) -> int:
    return main.cli(list(argv))


def _ours(workdir):
    _, ctx, config = inference.load_trained_run(workdir, "latest")
    return transformer.TransformerConfig.from_config(config.model), ctx.params


def _relative_error(ours, ref) -> float:
    return float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref)))


# One case (the one with the most features) runs in the quick suite; ~40 s each on 2 CPU cores.
QUICK_CASE = "llama_gqa_tied_llama3"


@pytest.mark.parametrize("case", [c if c == QUICK_CASE else pytest.param(c, marks=pytest.mark.slow)
                                  for c in sorted(CASES)])
def test_import_matches_transformers_and_export_round_trips(case, tmp_path):
    kind, overrides = CASES[case]
    hf_dir, workdir, out = (str(tmp_path / n) for n in ("hf", "run", "export"))
    model = hfc.make_model(kind, hf_dir, **overrides)
    assert _cli("import-hf", hf_dir, "--workdir", workdir) == 0
    cfg, params = _ours(workdir)

    rng = np.random.default_rng(0)
    tokens = rng.integers(0, hfc.VOCAB, (2, 24))
    ref = hfc.reference_logits(model, tokens)
    ours = np.asarray(gpt.GPT(cfg).apply({"params": params}, tokens))
    err = _relative_error(ours, ref)
    print(f"{case}: max |ours - ref| / max |ref| = {err:.2e} (max |ref| {np.abs(ref).max():.2f})")
    assert err < 1e-4

    prompt = tokens[:, :8]
    greedy = decoding.continue_prompt(gpt.GPTDecoder(cfg), params, prompt, 32,
                                      rng=np.zeros(2, np.uint32), temperature=0)[:, 8:]
    np.testing.assert_array_equal(greedy, hfc.reference_greedy(model, prompt, 32))

    from transformers import AutoModelForCausalLM, AutoTokenizer
    hf_tok = AutoTokenizer.from_pretrained(hf_dir)
    expected_ids = hf_tok.encode(hfc.TEXT, add_special_tokens=False)
    assert tokenizer_lib.load(workdir).encode(hfc.TEXT) == expected_ids

    assert _cli("export-hf", "--workdir", workdir, "--out", out) == 0
    exported = AutoModelForCausalLM.from_pretrained(out)
    np.testing.assert_array_equal(hfc.reference_logits(exported, tokens), ref)
    assert AutoTokenizer.from_pretrained(out).encode(hfc.TEXT, add_special_tokens=False) == expected_ids
    original = load_file(os.path.join(hf_dir, "model.safetensors"))
    written = load_file(os.path.join(out, "model.safetensors"))
    for name, array in written.items():    # tied models store no lm_head in either folder
        np.testing.assert_array_equal(array, original[name], err_msg=name)

    again = str(tmp_path / "again")
    assert _cli("import-hf", out, "--workdir", again) == 0
    first, second = hf_export.flat_params(params), hf_export.flat_params(_ours(again)[1])
    assert first.keys() == second.keys()
    for path in first:
        np.testing.assert_array_equal(first[path], second[path], err_msg=path)


def test_sliding_window_is_refused_in_one_line(tmp_path, capsys):
    hf_dir = str(tmp_path / "mistral")
    hfc.make_model("mistral", hf_dir, sliding_window=16)
    capsys.readouterr()                    # transformers' own warnings while making it
    assert _cli("import-hf", hf_dir, "--workdir", str(tmp_path / "run")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "sliding-window" in err and "config.json" in err
    assert not os.path.exists(tmp_path / "run")


LLAMA_CONFIG = {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4,
                "num_hidden_layers": 1, "intermediate_size": 96, "vocab_size": 128,
                "max_position_embeddings": 64, "rms_norm_eps": 1e-6}


@pytest.mark.parametrize("config, message", [
    (LLAMA_CONFIG, "no model.safetensors nor model.safetensors.index.json"),
    ({k: v for k, v in LLAMA_CONFIG.items() if k != "rms_norm_eps"}, "has no 'rms_norm_eps'"),
    ({**LLAMA_CONFIG, "model_type": "gemma"}, "model_type 'gemma' is not supported"),
    ({**LLAMA_CONFIG, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "'yarn'"),
])
def test_a_folder_pretrainx_cannot_read_is_one_line(tmp_path, capsys, config, message):
    hf_dir = tmp_path / "hf"
    hf_dir.mkdir()
    (hf_dir / "config.json").write_text(json.dumps(config))
    assert _cli("import-hf", str(hf_dir), "--workdir", str(tmp_path / "run")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
