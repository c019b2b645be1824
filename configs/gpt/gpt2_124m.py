"""GPT-2 small (124M) at nanoGPT's benchmark shape: 12 layers, 12 heads, 768 wide, T 1024,
vocab 50304 (50257 padded to a multiple of 64), batch 32, bf16 compute, fp32 master weights.

Throughput benchmark (what nanoGPT's bench.py measures; data are random windows of a real corpus):
  pretrainx bench --config configs/gpt/gpt2_124m.py --steps 30
Training on your own BPE tokens:
  pretrainx train --config configs/gpt/gpt2_124m.py --workdir workdirs/gpt2 \
      --config.data.path=/path/to/corpus.txt --config.data.tokenizer=/path/to/bpe50k
The `:smoke` variant keeps the recipe but shrinks every size so it runs on a CPU.
"""
import os

from pretrainx.config import load as config_lib


def get_config(arg: str = ""):
    if arg not in ("", "smoke"):
        raise ValueError(f"unknown variant {arg!r} of gpt2_124m (known: smoke)")
    c = config_lib.load(os.path.join(os.path.dirname(__file__), "shakespeare_char.py"))
    c.seed = 0
    c.batch_size = 32
    c.data.path = "stdlib"            # needs no file; point it at your corpus
    c.data.tokenizer = "byte"
    c.data.seq_len = 1024
    c.model.vocab_size = 50304
    c.model.num_layers = 12
    c.model.num_heads = 12
    c.model.embed_dim = 768
    c.model.max_len = 1024
    c.model.dropout = 0.0
    c.model.attention_dropout = 0.0
    c.model.use_bias = True
    c.model.dtype = "bfloat16"
    c.optimizer.lr = 6e-4             # nanoGPT train_gpt2.py
    c.optimizer.end_lr = 6e-5
    c.optimizer.warmup_steps = 2000
    c.optimizer.decay_steps = 600000
    c.optimizer.b2 = 0.95
    c.train.steps = 600000
    c.eval.every = 2000
    c.eval.num_batches = 50
    c.eval.batch_size = 32
    c.checkpoint.every = 2000
    if arg == "smoke":
        c.batch_size = 8
        c.data.seq_len = c.model.max_len = 64
        c.data.max_bytes = 1_000_000
        c.model.num_layers, c.model.num_heads, c.model.embed_dim = 2, 4, 64
        c.model.dtype = "float32"
        c.train.steps = 20
        c.eval.every = 0
        c.checkpoint.every = 20
        c.eval.batch_size = 8
    return c
