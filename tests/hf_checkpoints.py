"""Tiny random Hugging Face checkpoints made with transformers (fp32, CPU), the reference the
tests/test_hf_*.py files compare pretrainx against. Nothing is downloaded."""
from __future__ import annotations

import numpy as np

TEXT = "ROMEO: But soft, what light through yonder window breaks? Ça va, 東京 2026!"
CORPUS = ["First Citizen: Before we proceed any further, hear me speak.",
          "All: Speak, speak.", "First Citizen: You are all resolved rather to die than to famish?",
          TEXT] * 20
VOCAB = 128          # the model's rows; the tokenizer has fewer (pretrainx pads the table too)
T5_VOCAB = 256       # T5's: 100 sentinels, as published (span corruption needs them), and the pieces


def save_tokenizer(directory: str, kind: str) -> None:
    """A byte-level BPE trained on a few lines, saved as transformers saves a fast tokenizer
    (for Qwen2 with Qwen2's NFC normaliser and regex split, as its published tokenizer.json;
    BERT and T5 get their own, see save_encoder_tokenizer)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    if kind in ENCODER_SPECIALS:
        return save_encoder_tokenizer(directory, kind)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    if kind == "qwen2":   # transformers 5 rebuilds a Qwen2 tokenizer so, whatever the file says
        from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB - 8, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet()[:0])
    tok.train_from_iterator(CORPUS, trainer)
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                            bos_token="<|endoftext|>").save_pretrained(directory)


#: the special tokens of BERT's WordPiece and T5's vocabularies, as their published files name them
ENCODER_SPECIALS = {"bert": dict(pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                 sep_token="[SEP]", mask_token="[MASK]"),
                    "t5": dict(pad_token="<pad>", eos_token="</s>", unk_token="<unk>")}


def save_encoder_tokenizer(directory: str, kind: str) -> None:
    """BERT: a WordPiece with BERT's normaliser and pre-tokenizer; T5: a Unigram over
    Metaspace pieces with T5's specials first (pad 0, eos 1, unk 2) and 100 sentinels."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    specials = ENCODER_SPECIALS[kind]
    if kind == "bert":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=VOCAB - 8,
                                            special_tokens=list(specials.values()))
    else:
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        extra = [f"<extra_id_{i}>" for i in range(100)]
        trainer = trainers.UnigramTrainer(vocab_size=T5_VOCAB - 28, unk_token="<unk>",
                                          special_tokens=list(specials.values()) + extra)
        specials = {**specials, "additional_special_tokens": extra}
    tok.train_from_iterator(CORPUS, trainer)
    PreTrainedTokenizerFast(tokenizer_object=tok, **specials).save_pretrained(directory)


def _randomise(model, seed: int, matrix_std: float = 0.3) -> None:
    """Every parameter random (transformers starts biases at 0 and norms at 1, which would
    hide a swapped bias or norm): matrices N(0, matrix_std), vectors their init + N(0, 0.1)."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            noise = torch.randn(p.shape, generator=gen) * (matrix_std if p.ndim >= 2 else 0.1)
            p.copy_(noise if p.ndim >= 2 else p + noise)


def make_model(kind: str, directory: str, seed: int = 0, max_shard_size: str | None = None,
               **overrides):
    """A random ``kind`` ("gpt2" | "llama" | "qwen2" | "mistral" | "bert" | "t5") model saved in
    ``directory`` with its tokenizer (in shards with an index when ``max_shard_size``, e.g.
    "40KB"); returns the torch model (eval mode)."""
    import torch
    import transformers as tf
    torch.manual_seed(seed)
    common = dict(vocab_size=VOCAB, bos_token_id=None, eos_token_id=None, pad_token_id=None)
    if kind == "gpt2":
        config = tf.GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=128, **common,
                               **overrides)
        model = tf.GPT2LMHeadModel(config)
    elif kind == "bert":
        model = tf.BertForMaskedLM(tf.BertConfig(
            hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=128, type_vocab_size=2, vocab_size=VOCAB, pad_token_id=0,
            **overrides))
    elif kind == "t5":       # v1.0 by default; v1.1: feed_forward_proj="gated-gelu", untied
        model = tf.T5ForConditionalGeneration(tf.T5Config(
            d_model=64, d_kv=16, d_ff=96, num_layers=2, num_decoder_layers=2, num_heads=4,
            relative_attention_num_buckets=8, relative_attention_max_distance=20,
            vocab_size=T5_VOCAB, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
            **overrides))
    else:
        fields = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      **common)
        fields.update(overrides)
        cls = {"llama": (tf.LlamaConfig, tf.LlamaForCausalLM), "qwen2": (tf.Qwen2Config,
               tf.Qwen2ForCausalLM), "mistral": (tf.MistralConfig, tf.MistralForCausalLM)}[kind]
        model = cls[1](cls[0](**fields))
    # T5 has no 1/sqrt(d) in attention: at 0.3 its attention is so sharp that transformers' own
    # float32 logits are 7e-5 from its float64 ones; 0.1 keeps the comparison about the mapping
    _randomise(model, seed, 0.1 if kind == "t5" else 0.3)
    model.eval()
    shards = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
    model.save_pretrained(directory, safe_serialization=True, **shards)
    save_tokenizer(directory, kind)
    return model


def reference_logits(model, tokens: np.ndarray) -> np.ndarray:
    import torch
    with torch.no_grad():
        return model(torch.as_tensor(tokens, dtype=torch.long)).logits.numpy()


def reference_greedy(model, prompt: np.ndarray, new_tokens: int) -> np.ndarray:
    import torch
    with torch.no_grad():
        out = model.generate(torch.as_tensor(prompt, dtype=torch.long), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, eos_token_id=None,
                             pad_token_id=0)
    return out.numpy()[:, prompt.shape[1]:]


def untie_t5_head(directory: str, seed: int = 1):
    """Make the T5 in ``directory`` a v1.1 as published: its own random ``lm_head.weight`` and
    ``tie_word_embeddings: false`` in config.json (transformers 5 itself saves every T5 tied,
    with ``scale_decoder_outputs``); returns the reloaded transformers model."""
    import json
    import os
    from safetensors.numpy import load_file, save_file
    from transformers import T5ForConditionalGeneration
    path = os.path.join(directory, "model.safetensors")
    tensors = load_file(path)
    rng = np.random.default_rng(seed)
    tensors["lm_head.weight"] = (rng.standard_normal(tensors["shared.weight"].shape) * 0.1).astype(np.float32)
    save_file(tensors, path, metadata={"format": "pt"})
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    config = {k: v for k, v in config.items() if k not in ("scale_decoder_outputs", "is_gated_act",
                                                           "dense_act_fn")}
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump({**config, "tie_word_embeddings": False}, f, indent=2)
    return T5ForConditionalGeneration.from_pretrained(directory).eval()


def reference_seq2seq_greedy(model, tokens: np.ndarray, new_tokens: int) -> np.ndarray:
    """T5's greedy continuation of the decoder start token (0), without it."""
    import torch
    with torch.no_grad():
        out = model.generate(torch.as_tensor(tokens, dtype=torch.long), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, eos_token_id=None,
                             decoder_start_token_id=0)
    return out.numpy()[:, 1:]
