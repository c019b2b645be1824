"""Llama-3.2-1B (Meta, 2024): 16 layers, 2048 wide, 32 query / 8 key-value heads of 64, SwiGLU
8192, RMSNorm, RoPE base 500,000 with Llama 3.1's frequency scaling (factor 32), tied head,
vocabulary 128,256: 1,235,814,400 parameters (the registry's `llama3_2_1b_params`).

Continue pretraining the published weights (downloaded into a local folder):
  pretrainx import-hf ~/models/Llama-3.2-1B --workdir workdirs/llama1b_hf
  pretrainx train --config configs/llama/llama3_2_1b.py --workdir workdirs/llama1b_cpt \\
      --config.init_from.workdir=workdirs/llama1b_hf \\
      --config.data.path=/path/to/corpus.txt --config.data.tokenizer=workdirs/llama1b_hf
  pretrainx export-hf --workdir workdirs/llama1b_cpt --out ~/models/llama1b_cpt
The `:smoke` variant is a 2-layer, 128-wide Llama (GQA 4/2) trained from scratch on Tiny
Shakespeare characters: under a minute on 2 CPU cores.
"""
from pretrainx.config import text, variants


def get_config(arg: str = ""):
    return text.llama(variants.parse(arg, __file__, "smoke"))
