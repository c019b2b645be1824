"""Qwen2.5-0.5B (Qwen team, 2024): 24 layers, 896 wide, 14 query / 2 key-value heads of 64,
SwiGLU 4864, RMSNorm (eps 1e-6), RoPE base 1,000,000 without scaling, biases on q/k/v only, tied
head, vocabulary 151,936: 494,032,768 parameters (the registry's `qwen2_5_0_5b_params`).

  pretrainx import-hf ~/models/Qwen2.5-0.5B --workdir workdirs/qwen05_hf
  pretrainx sample --workdir workdirs/qwen05_hf --prompt "The capital of France is"
"""
from pretrainx.config import base, text, variants


def get_config(arg: str = ""):
    variants.parse(arg, __file__)
    return base.change(text.llama(), {
        "model.vocab_size": 151936, "model.num_layers": 24, "model.num_heads": 14,
        "model.num_kv_heads": 2, "model.embed_dim": 896, "model.head_size": 64,
        "model.mlp_dim": 4864, "model.max_len": 32768, "model.norm_eps": 1e-6,
        "model.qkv_bias": True, "model.rope_theta": 1000000.0, "model.rope_scaling": "none"})
