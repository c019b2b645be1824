"""Hugging Face BERT and T5 (v1.0 and v1.1) checkpoints in and out, against transformers itself.

As tests/test_hf_decoders.py for the decoders: a tiny random checkpoint made with transformers
(tests/hf_checkpoints.py) is imported with ``pretrainx import-hf``; its logits match within
1e-4 relative, T5's 32 greedy tokens through our KV cache equal ``generate(do_sample=False)``,
the tokenizer gives the same ids (T5's "<pad>" is "[PAD]" inside pretrainx, same id, and
"<pad>" again after export); transformers loads the export and computes the same logits, and
import -> export -> import is bit-exact.
"""
import os

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from pretrainx import main
from pretrainx.core import inference
from pretrainx.data import special_tokens as st, tokenizer as tokenizer_lib
from pretrainx.models import bert, decoding, t5, transformer
from pretrainx.tools import hf_export
from tests import hf_checkpoints as hfc

CASES = {
    "bert": ("bert", {}, False),
    # v1.0: ReLU MLP, head tied to the embeddings, decoder output scaled by d_model^-0.5
    "t5_v1_0": ("t5", {}, False),
    # v1.1 as transformers 5 saves it: gated GELU, head tied, no scaling (scale_decoder_outputs)
    "t5_v1_1_tied": ("t5", dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False), False),
    # v1.1 as published: gated GELU, its own lm_head, no scaling
    "t5_v1_1_untied": ("t5", dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False), True),
}
QUICK_CASE = "t5_v1_1_untied"     # the most features; the others are slow (~15 s each, 2 cores)


def _ours(workdir):
    _, ctx, config = inference.load_trained_run(workdir, "latest")
    return transformer.TransformerConfig.from_config(config.model), ctx.params


def _logits(kind, cfg, params, tokens):
    if kind == "bert":
        return np.asarray(bert.Bert(cfg).apply({"params": params}, tokens))
    return np.asarray(t5.T5(cfg).apply({"params": params}, tokens, tokens[:, :9]))


def _reference(kind, model, tokens):
    with torch.no_grad():
        if kind == "bert":
            return model(torch.as_tensor(tokens)).logits.numpy()
        return model(input_ids=torch.as_tensor(tokens),
                     decoder_input_ids=torch.as_tensor(tokens[:, :9])).logits.numpy()


def _exported_model(kind, out):
    from transformers import AutoModelForMaskedLM, AutoModelForSeq2SeqLM
    return (AutoModelForMaskedLM if kind == "bert" else AutoModelForSeq2SeqLM).from_pretrained(out).eval()


@pytest.mark.parametrize("case", [c if c == QUICK_CASE else pytest.param(c, marks=pytest.mark.slow)
                                  for c in sorted(CASES)])
def test_import_matches_transformers_and_export_round_trips(case, tmp_path):
    kind, overrides, untie = CASES[case]
    hf_dir, workdir, out = (str(tmp_path / n) for n in ("hf", "run", "export"))
    model = hfc.make_model(kind, hf_dir, **overrides)
    if untie:
        model = hfc.untie_t5_head(hf_dir)
    assert main.cli(["import-hf", hf_dir, "--workdir", workdir]) == 0
    cfg, params = _ours(workdir)
    assert cfg.tie_embeddings == (not untie)

    tokens = np.random.default_rng(0).integers(0, hfc.VOCAB, (2, 24))
    ref = _reference(kind, model, tokens)
    err = float(np.max(np.abs(_logits(kind, cfg, params, tokens) - ref)) / np.max(np.abs(ref)))
    print(f"{case}: max |ours - ref| / max |ref| = {err:.2e} (max |ref| {np.abs(ref).max():.2f})")
    assert err < 1e-4
    if kind == "t5":
        encoded = t5.encoded_params(cfg, params, tokens, np.ones_like(tokens))
        greedy = decoding.continue_prompt(t5.T5Decoder(cfg), encoded, np.zeros((2, 1), np.int32),
                                          32, rng=np.zeros(2, np.uint32), temperature=0)[:, 1:]
        np.testing.assert_array_equal(greedy, hfc.reference_seq2seq_greedy(model, tokens, 32))

    from transformers import AutoTokenizer
    hf_tok = AutoTokenizer.from_pretrained(hf_dir)
    expected_ids = hf_tok.encode(hfc.TEXT, add_special_tokens=False)
    ours_tok = tokenizer_lib.load(workdir)
    assert ours_tok.encode(hfc.TEXT) == expected_ids
    assert ours_tok.token_id(st.PAD) == hf_tok.pad_token_id      # "<pad>" in T5, same id

    assert main.cli(["export-hf", "--workdir", workdir, "--out", out]) == 0
    np.testing.assert_array_equal(_reference(kind, _exported_model(kind, out), tokens), ref)
    exported_tok = AutoTokenizer.from_pretrained(out)
    assert exported_tok.encode(hfc.TEXT, add_special_tokens=False) == expected_ids
    assert exported_tok.pad_token == hf_tok.pad_token and exported_tok.pad_token_id == hf_tok.pad_token_id
    original = load_file(os.path.join(hf_dir, "model.safetensors"))
    written = load_file(os.path.join(out, "model.safetensors"))
    for name, array in written.items():    # tied heads are stored in neither folder
        np.testing.assert_array_equal(array, original[name], err_msg=name)

    again = str(tmp_path / "again")
    assert main.cli(["import-hf", out, "--workdir", again]) == 0
    first, second = hf_export.flat_params(params), hf_export.flat_params(_ours(again)[1])
    assert first.keys() == second.keys()
    for path in first:
        np.testing.assert_array_equal(first[path], second[path], err_msg=path)
