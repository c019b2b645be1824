"""Tiny random Hugging Face checkpoints made with transformers (fp32, CPU), the reference the
tests/test_hf_*.py files compare pretrainx against. Nothing is downloaded."""
from __future__ import annotations

import numpy as np

TEXT = "ROMEO: But soft, what light through yonder window breaks? Ça va, 東京 2026!"
CORPUS = ["First Citizen: Before we proceed any further, hear me speak.",
          "All: Speak, speak.", "First Citizen: You are all resolved rather to die than to famish?",
          TEXT] * 20
VOCAB = 128          # the model's rows; the tokenizer has fewer (pretrainx pads the table too)


def save_tokenizer(directory: str, kind: str) -> None:
    """A byte-level BPE trained on a few lines, saved as transformers saves a fast tokenizer
    (for Qwen2 with Qwen2's NFC normaliser and regex split, as its published tokenizer.json)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
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


def _randomise(model, seed: int) -> None:
    """Every parameter random (transformers starts biases at 0 and norms at 1, which would
    hide a swapped bias or norm): matrices N(0, 0.1), vectors their init + N(0, 0.1)."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            noise = torch.randn(p.shape, generator=gen) * (0.3 if p.ndim >= 2 else 0.1)
            p.copy_(noise if p.ndim >= 2 else p + noise)


def make_model(kind: str, directory: str, seed: int = 0, max_shard_size: str | None = None,
               **overrides):
    """A random ``kind`` ("gpt2" | "llama" | "qwen2" | "mistral") causal LM saved in
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
    else:
        fields = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      **common)
        fields.update(overrides)
        cls = {"llama": (tf.LlamaConfig, tf.LlamaForCausalLM), "qwen2": (tf.Qwen2Config,
               tf.Qwen2ForCausalLM), "mistral": (tf.MistralConfig, tf.MistralForCausalLM)}[kind]
        model = cls[1](cls[0](**fields))
    _randomise(model, seed)
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
