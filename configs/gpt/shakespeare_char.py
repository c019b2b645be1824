"""nanoGPT's `train_shakespeare_char` recipe: a 10.7M-parameter char-level GPT on Tiny Shakespeare.

  pretrainx train --config configs/gpt/shakespeare_char.py --workdir workdirs/shakespeare_char
  pretrainx train --config configs/gpt/shakespeare_char.py:smoke --workdir /tmp/sc_smoke
  pretrainx train --config configs/gpt/shakespeare_char.py:cpu --workdir /tmp/sc_cpu  # nanoGPT's CPU baby GPT
  pretrainx sample --workdir workdirs/shakespeare_char --prompt "ROMEO:" --max-new-tokens 200
  pretrainx sweep --config configs/gpt/shakespeare_char.py:smoke --workdir /tmp/sc_sweep --parallel 2
  pretrainx sweep --config configs/gpt/shakespeare_char.py --workdir workdirs/sc_tpe  # GPU

Same numbers as nanoGPT's config/train_shakespeare_char.py: 6 layers, 6 heads, width 384, block
256, batch 64, dropout 0.2, AdamW lr 1e-3 -> 1e-4 cosine over 5000 steps with 100 warm-up steps,
beta2 0.99, weight decay 0.1, clip 1.0; the first 90 % of the characters train, the rest validate.
Point `data.path` at your copy of input.txt, or set `data.tfds_name=tiny_shakespeare` with a
`data.data_dir` that holds it.
"""
import os

import ml_collections

# The shared data folder beside a checkout of this repository.
_SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")


def get_config(arg: str = ""):
    c = ml_collections.ConfigDict()
    c.objective = "clm"
    c.seed = 1337
    c.batch_size = 64                 # global: split over the mesh's data and fsdp axes

    c.data = ml_collections.ConfigDict()
    c.data.kind = "text"
    c.data.path = os.path.normpath(os.path.join(_SHARED, "tinyshakespeare", "input.txt"))
    c.data.tfds_name = ""             # e.g. "tiny_shakespeare": read through TFDS instead of path
    c.data.tfds_data_dir = ""
    c.data.tfds_text_key = "text"
    c.data.max_bytes = 0              # 0: the whole corpus
    c.data.tokenizer = "char"         # "char" | "byte" | path to a trained tokenizer
    c.data.val_fraction = 0.1         # nanoGPT: first 90 % train, last 10 % val
    c.data.split = "chars"            # nanoGPT's split by character position | "documents"
    c.data.doc_separator = ""         # "": the corpus is one document; "\n\n" would cut paragraphs
    c.data.packing = "stream"         # one token stream read as windows | "greedy"/"concat"/"pad" rows
    c.data.seq_len = 256
    c.data.sampling = "random"        # "random": nanoGPT's random windows | "sequential"
    c.data.decode_errors = "replace"  # bytes that are not UTF-8 (non-byte tokenizers): "replace"
                                      # with U+FFFD and warn with their count | "strict": refuse

    c.model = ml_collections.ConfigDict()
    c.model.vocab_size = 65           # the 65 distinct characters of Tiny Shakespeare
    c.model.num_layers = 6
    c.model.num_heads = 6
    c.model.embed_dim = 384
    c.model.mlp_ratio = 4
    c.model.max_len = 256
    c.model.dropout = 0.2             # residual and embedding dropout
    c.model.attention_dropout = 0.2   # nanoGPT drops the attention weights with the same p
    c.model.use_bias = False          # nanoGPT's shakespeare_char sets bias=False
    c.model.tie_embeddings = True
    c.model.rope = False              # learned absolute positions, as GPT-2
    c.model.dtype = "float32"         # compute dtype; "bfloat16" keeps fp32 master weights
    c.model.remat = False
    c.model.attention = "auto"        # "auto" | "xla" | "cudnn" (jax.nn.dot_product_attention)
    c.model.embed_lookup = "auto"     # one-hot matmul for small tables, any on a GPU | "gather" | "onehot"
    c.model.logits_dtype = "float32"  # "float32" | "compute" (bf16 logits under bf16 compute)
    c.model.attention_kind = "causal"  # "causal" | "bidirectional" | "prefix" (models/transformer.py)

    c.loss = ml_collections.ConfigDict()
    c.loss.label_smoothing = 0.0

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.lr = 1e-3
    c.optimizer.end_lr = 1e-4         # nanoGPT min_lr
    c.optimizer.schedule = "cosine"   # "cosine" | "inverse_sqrt" | "exponential" | "constant"
    c.optimizer.warmup_steps = 100
    c.optimizer.decay_steps = 5000    # nanoGPT lr_decay_iters
    c.optimizer.decay_rate = 0.1      # for "exponential": lr multiplier over decay_steps
    c.optimizer.b1 = 0.9
    c.optimizer.b2 = 0.99
    c.optimizer.eps = 1e-8
    c.optimizer.weight_decay = 0.1
    # "matrices": rank >= 2 tensors incl. embeddings, no norms/biases (nanoGPT) |
    # "matrices_no_embeddings" | "all"
    c.optimizer.decay_mask = "matrices"
    c.optimizer.clip_norm = 1.0       # 0 disables
    c.optimizer.grad_accum = 1
    c.optimizer.ema_decay = 0.0       # 0: no EMA of the parameters
    c.optimizer.mu_dtype = "float32"   # Adam's first moment; "bfloat16" saves memory traffic

    c.train = ml_collections.ConfigDict()
    # Random bits of each step (dropout, noise): "threefry" | "rbg" | "unsafe_rbg" (XLA's
    # RngBitGenerator: much cheaper dropout on GPUs; other bits, not mesh-invariant)
    c.train.rng_impl = "threefry"
    c.train.steps = 5000
    c.train.log_every = 10
    c.train.progress = True
    c.train.preemption_check_every = 10   # multi-process: steps between SIGTERM agreements

    c.eval = ml_collections.ConfigDict()
    c.eval.every = 250                # nanoGPT eval_interval
    c.eval.num_batches = 200          # nanoGPT eval_iters
    c.eval.batch_size = 64

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every = 250
    c.checkpoint.keep = 2             # last K
    c.checkpoint.best_metric = "val/loss"  # "" disables the best-checkpoint keeper
    c.checkpoint.best_mode = "min"
    c.checkpoint.async_save = True

    c.init_from = ml_collections.ConfigDict()   # start from another run's arrays (init_from.py)
    c.init_from.workdir = ""          # "": from scratch; a run's workdir: load it (unless resuming)
    c.init_from.step = "latest"       # "latest" | "best" | a step number, e.g. "2000"
    c.init_from.mapping = (("params", "params"),)   # (source subtree, target subtree) pairs

    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1                  # -1: all devices not used by the other axes
    c.mesh.fsdp = 1
    c.mesh.tensor = 1

    c.sharding = ml_collections.ConfigDict()
    # logical axis -> mesh axes. Parameters carry the logical names (see models/transformer.py, models/gpt.py).
    c.sharding.rules = (
        ("batch", ("data", "fsdp")),
        ("vocab", "tensor"),
        ("embed", "fsdp"),
        ("mlp", "tensor"),
        ("heads", "tensor"),
        ("kv", None),
        ("length", None),
    )

    c.sample = ml_collections.ConfigDict()
    c.sample.prompt = "\n"
    c.sample.max_new_tokens = 500
    c.sample.temperature = 0.8
    c.sample.top_k = 200

    if arg == "smoke":                # < 1 minute on 2 CPU cores, still learns real structure
        c.batch_size = 32
        c.data.seq_len = 64
        c.model.max_len = 64
        c.model.num_layers = 2
        c.model.num_heads = 4
        c.model.embed_dim = 128
        c.model.dropout = 0.0
        c.model.attention_dropout = 0.0
        c.optimizer.lr = 3e-3
        c.optimizer.end_lr = 3e-4
        c.optimizer.warmup_steps = 20
        c.optimizer.decay_steps = 400
        c.train.steps = 400
        c.train.log_every = 20
        c.eval.every = 200
        c.eval.num_batches = 10
        c.eval.batch_size = 32
        c.checkpoint.every = 200
        c.sample.max_new_tokens = 100
    elif arg == "cpu":
        # nanoGPT README's "baby GPT" for a CPU (--block_size=64 --batch_size=12 --n_layer=4
        # --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0
        # --eval_iters=20); nanoGPT reports val loss 1.88 for it.
        c.batch_size = 12
        c.data.seq_len = 64
        c.model.max_len = 64
        c.model.num_layers = 4
        c.model.num_heads = 4
        c.model.embed_dim = 128
        c.model.dropout = 0.0
        c.model.attention_dropout = 0.0
        c.optimizer.decay_steps = 2000
        c.train.steps = 2000
        c.eval.num_batches = 20
        c.eval.batch_size = 12
    elif arg:
        raise ValueError(f"unknown variant {arg!r} of shakespeare_char (known: smoke, cpu)")
    return c


def get_sweep(arg: str = ""):
    """``pretrainx sweep`` definitions (same args as get_config)."""
    from pretrainx.tools import sweep_def as sd   # here: training this config needs no optuna
    if arg == "smoke":   # 4 trials, 7.6 min on 2 busy CPU cores with --parallel 2 (2026-11-30)
        return sd.grid(sd.product(sd.values("optimizer.lr", [1e-3, 3e-3]),
                                  sd.values("model.embed_dim", [64, 128])))
    if arg == "":        # the full recipe's learning rate and dropout, TPE, 16 trials on a GPU
        return sd.search({"optimizer.lr": sd.loguniform(3e-4, 3e-3),
                          "model.dropout": sd.uniform(0.0, 0.3)},
                         sampler="tpe", trials=16, sampler_options={"n_startup_trials": 4},
                         # the recipe's own values first, so TPE starts from a known-good point
                         enqueue=[{"optimizer.lr": 1e-3, "model.dropout": 0.2}],
                         pruner="median", pruner_options={"n_startup_trials": 3,
                                                          "n_warmup_steps": 1000})
    raise ValueError(f"no sweep for variant {arg!r} of shakespeare_char (known: '', smoke)")
