"""GPT-2 small (124M) at nanoGPT's benchmark shape: 12 layers, 12 heads, 768 wide, T 1024,
vocab 50304 (50257 padded to a multiple of 64), batch 32, bf16 compute, fp32 master weights.

Throughput benchmark (what nanoGPT's bench.py measures; data are random windows of a real corpus):
  pretrainx bench --config configs/gpt/gpt2_124m.py --steps 30
Training on your own BPE tokens:
  pretrainx train --config configs/gpt/gpt2_124m.py --workdir workdirs/gpt2 \
      --config.data.path=/path/to/corpus.txt --config.data.tokenizer=/path/to/bpe50k
The `:smoke` variant keeps the recipe but shrinks every size so it runs on a CPU.
`:shards` reads token shards made once (start-up and memory then do not grow with the corpus):
  pretrainx tokenize /path/to/corpus.jsonl --tokenizer /path/to/bpe50k --out workdirs/shards/gpt2
  pretrainx train --config configs/gpt/gpt2_124m.py:shards --workdir workdirs/gpt2
"""
from pretrainx.config import base, text, variants


def get_config(arg: str = ""):
    flags = variants.parse(arg, __file__, "smoke", "shards", "shards,smoke")
    c = text.gpt()
    c = base.change(c, {
        "seed": 0, "batch_size": 32,
        "data.path": "stdlib",        # needs no file; point it at your corpus
        "data.tokenizer": "byte", "data.seq_len": 1024,
        "model.vocab_size": 50304, "model.num_layers": 12, "model.num_heads": 12, "model.embed_dim": 768,
        "model.max_len": 1024, "model.dropout": 0.0, "model.attention_dropout": 0.0,
        "model.use_bias": True, "model.dtype": "bfloat16",
        "optimizer.lr": 6e-4, "optimizer.end_lr": 6e-5,   # nanoGPT train_gpt2.py
        "optimizer.warmup_steps": 2000, "optimizer.b2": 0.95,
        "eval.num_batches": 50, "eval.batch_size": 32})
    c = base.length(c, 600000, every=2000)
    if "smoke" in flags:
        # bytes need 256 ids, not 50304; 200 steps leave a warm-up of 20 and learn
        c = base.change(c, {"batch_size": 8, "data.seq_len": 64, "model.max_len": 64,
                            "data.max_bytes": 1_000_000, "model.num_layers": 2, "model.num_heads": 4,
                            "model.embed_dim": 64, "model.dtype": "float32", "model.vocab_size": 256,
                            "optimizer.lr": 3e-3, "optimizer.end_lr": 3e-4,
                            "optimizer.warmup_steps": 20, "eval.num_batches": 8, "eval.batch_size": 8})
        c = base.length(c, 200, every=100)
    if "shards" in flags:
        c = text.read_shards(c, text.checkout_path("workdirs", "shards", "gpt2"))
    return c
