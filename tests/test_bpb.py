"""Bits per byte of the validation text (``val/bpb``): hand-counted for char, byte and BPE
vocabularies over multi-byte UTF-8, and comparable between a char and a BPE model of one text."""
import json
import math

import jax
import jax.numpy as jnp
import pytest

import toy_objectives as toys
from pretrainx.core import evaluate, train
from pretrainx.data import readers

# ASCII training documents; one validation document of 2 + 3 + 4 bytes: "ab", the euro sign
# (3 bytes in UTF-8) and an emoji (4 bytes), so its tokens, characters and bytes all differ.
TRAIN_DOCS = ["ab " * 20, "ab " * 20]
VAL_DOC = "ab€😀"
VAL_BYTES = 2 + 3 + 4

# Its tokens, counted by hand. char: a, b, €, 😀. byte: one per byte. BPE (byte-level, GPT-2's
# pre-tokenizer), trained on the training documents only: their first merge is a+b, and nothing
# there teaches a merge of the euro's or the emoji's bytes, so "ab" + 7 single bytes.
HAND_TOKENS = {"char": 4, "byte": 9, "bpe:400": 1 + 7}


def jsonl(tmp_path, docs):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    return str(path)


def uniform_setup(tmp_path, tokenizer: str):
    """A causal LM whose every parameter is 0: logits 0, so each predicted token costs exactly
    log2(V) bits, V the model's vocabulary."""
    config = toys.config("clm", **{"data.kind": "jsonl", "data.path": jsonl(tmp_path, TRAIN_DOCS + [VAL_DOC]),
                                   "data.split": "documents", "data.val_fraction": 1 / 3,
                                   "data.tokenizer": tokenizer, "data.seq_len": 2,
                                   "model.max_len": 8, "model.vocab_size": 400,
                                   "batch_size": 8, "eval.batch_size": 8, "eval.num_batches": 3})
    built = train.setup(config)
    params = jax.tree.map(jnp.zeros_like, built.state.params)
    runner = evaluate.EvalRunner(built.objective, config, built.mesh, built.dataset, "")
    return built, runner.val_metrics(params, {}, {}, 0)


@pytest.mark.parametrize("tokenizer", sorted(HAND_TOKENS))
def test_bits_per_byte_hand_counted_over_multibyte_utf8(tmp_path, tokenizer):
    built, metrics = uniform_setup(tmp_path, tokenizer)
    info, tok = built.dataset.info, built.dataset.tokenizer
    assert info["val_bytes"] == VAL_BYTES == readers.utf8_bytes(VAL_DOC) and info["val_chars"] == 4
    assert [tok.decode([i]) for i in tok.encode(VAL_DOC)][0] == ("ab" if "bpe" in tokenizer else "a")
    expected_tokens = HAND_TOKENS[tokenizer]
    assert info["val_tokens"] == expected_tokens
    # every predicted token costs log2(400) bits; the text has expected_tokens of them per 9 bytes
    assert metrics["val/bpb"] == pytest.approx(math.log2(400) * expected_tokens / VAL_BYTES, rel=1e-6)
    assert metrics["val/bits_per_char"] == pytest.approx(math.log2(400) * expected_tokens / 4, rel=1e-6)


def trained_val_metrics(tmp_path, tokenizer: str, vocab_size: int) -> dict:
    """A small GPT trained briefly on Tiny Shakespeare with ``tokenizer``: its last ``val/*``."""
    from conftest import SHARED_DATA
    config = toys.config("clm", **{"data.path": f"{SHARED_DATA}/tinyshakespeare/input.txt",
                                   "data.max_bytes": 200_000, "data.tokenizer": tokenizer,
                                   "model.vocab_size": vocab_size, "model.num_layers": 2,
                                   "model.num_heads": 4, "model.embed_dim": 64,
                                   "model.max_len": 64, "data.seq_len": 64, "batch_size": 16,
                                   "optimizer.lr": 3e-3, "optimizer.warmup_steps": 10,
                                   "optimizer.decay_steps": 200, "train.steps": 200,
                                   "eval.every": 200, "eval.num_batches": 8,
                                   "checkpoint.every": 1000, "train.log_every": 100})
    history = train.run(config, str(tmp_path / tokenizer.replace(":", "_"))).history
    return [h for h in history if "val/bpb" in h][-1]


@pytest.mark.slow
def test_a_char_and_a_bpe_model_of_one_text_compare_on_bits_per_byte(tmp_path):
    char = trained_val_metrics(tmp_path, "char", 65)
    bpe = trained_val_metrics(tmp_path, "bpe:512", 512)
    # per token the two are not comparable: a BPE token covers several characters
    assert bpe["val/bits_per_token"] > 1.3 * char["val/bits_per_token"]
    # per byte of the same validation text they are (measured: see experiments/evaluation.md)
    assert abs(bpe["val/bpb"] - char["val/bpb"]) < 0.25 * char["val/bpb"]
    print({k: (char[k], bpe[k]) for k in ("val/bpb", "val/bits_per_token", "val/nll")})
