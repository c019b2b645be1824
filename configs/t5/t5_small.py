"""T5-small pretrained with span corruption (Raffel et al. 2020). Every setting of the T5 recipes
is here; ``t5_base.py`` starts from it.

  pretrainx tokenizer train --corpus ../shared/data/wikitext-2/valid.txt --kind unigram \
      --vocab-size 32128 --out workdirs/tokenizers/wikitext2_uni32k
  pretrainx train --config configs/t5/t5_small.py --workdir workdirs/t5_small          # v1.1, a GPU
  pretrainx train --config configs/t5/t5_small.py:v1_0 --workdir workdirs/t5_small_v10
  pretrainx train --config configs/t5/t5_small.py:smoke --workdir /tmp/t5_smoke        # < 1 min CPU
  pretrainx train --config configs/t5/t5_small.py:cpu --workdir /tmp/t5_cpu            # ~6 min CPU
  pretrainx sample --workdir /tmp/t5_smoke --prompt "ROMEO: I <extra_id_0> thee"

Variants: "" T5-small v1.1 (google/t5-v1_1-small: 8+8 layers, 512 wide, 6 heads of 64, gated-GELU
MLP of 1024, untied output, 76,961,152 parameters); "v1_0" the paper's T5-small (6+6 layers, 8
heads, ReLU MLP of 2048, output tied to the embeddings, 60,506,624 parameters). Paper: inputs 512,
targets 114 (from 568 raw tokens), noise density 0.15, mean span 3, batch 128, Adafactor with
inverse-sqrt LR 0.01 (AdamW here: the runner's optimiser), no dropout in pretraining (v1.1).
The data is WikiText-2's validation split (the only part in ../shared/data): a placeholder for
C4. `:smoke` is a 2+2-layer, 64-wide T5 on Tiny Shakespeare characters, the 3 sentinels it needs
appended after the characters with <extra_id_0> at the top.
"""
import os

import ml_collections

_HERE = os.path.dirname(os.path.abspath(__file__))
_SHARED = os.path.normpath(os.path.join(_HERE, "..", "..", "..", "shared", "data"))


def get_config(arg: str = ""):
    c = ml_collections.ConfigDict()
    c.objective = "span_corruption"
    c.seed = 0
    c.batch_size = 128

    c.data = ml_collections.ConfigDict()
    c.data.kind = "text"
    c.data.path = os.path.join(_SHARED, "wikitext-2", "valid.txt")
    c.data.tfds_name = ""
    c.data.tfds_data_dir = ""
    c.data.tfds_text_key = "text"
    c.data.max_bytes = 0
    c.data.tokenizer = os.path.normpath(os.path.join(_HERE, "..", "..", "workdirs", "tokenizers",
                                                     "wikitext2_uni32k"))
    c.data.val_fraction = 0.1
    c.data.split = "chars"
    c.data.doc_separator = ""
    c.data.packing = "stream"         # span corruption reads fixed raw rows
    c.data.seq_len = 512              # encoder inputs; the raw rows are 568 tokens
    c.data.sampling = "random"

    c.span = ml_collections.ConfigDict()
    c.span.noise_density = 0.15
    c.span.mean_span_length = 3.0

    c.model = ml_collections.ConfigDict()
    c.model.arch = "t5"
    c.model.vocab_size = 32128
    c.model.num_layers = 8
    c.model.num_decoder_layers = 8
    c.model.num_heads = 6
    c.model.head_size = 64
    c.model.embed_dim = 512
    c.model.mlp_ratio = 4
    c.model.mlp_dim = 1024
    c.model.mlp_activation = "gelu_tanh"   # T5 v1.1's gated GELU (the tanh form, as mesh TF)
    c.model.mlp_gated = True
    c.model.max_len = 512             # the decoder's cache for sampling
    c.model.dropout = 0.0
    c.model.attention_dropout = 0.0
    c.model.use_bias = False
    c.model.tie_embeddings = False
    c.model.norm = "rmsnorm"
    c.model.norm_eps = 1e-6
    c.model.norm_position = "pre"
    c.model.scaled_attention = False  # T5 folds 1/sqrt(d) into its init
    c.model.init_style = "t5"
    c.model.rope = False
    c.model.relative_buckets = 32
    c.model.relative_max_distance = 128
    c.model.type_vocab_size = 0
    c.model.attention_kind = "bidirectional"
    c.model.dtype = "bfloat16"
    c.model.remat = False
    c.model.attention = "auto"
    c.model.embed_lookup = "auto"
    c.model.logits_dtype = "float32"

    c.loss = ml_collections.ConfigDict()
    c.loss.label_smoothing = 0.0

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.lr = 1e-3
    c.optimizer.end_lr = 1e-5
    c.optimizer.schedule = "cosine"
    c.optimizer.warmup_steps = 10000
    c.optimizer.decay_steps = 524288
    c.optimizer.decay_rate = 0.1
    c.optimizer.b1 = 0.9
    c.optimizer.b2 = 0.999
    c.optimizer.eps = 1e-8
    c.optimizer.weight_decay = 0.0
    c.optimizer.decay_mask = "matrices"
    c.optimizer.clip_norm = 1.0
    c.optimizer.grad_accum = 1
    c.optimizer.ema_decay = 0.0
    c.optimizer.mu_dtype = "float32"
    c.optimizer.layer_decay = 1.0

    c.train = ml_collections.ConfigDict()
    c.train.rng_impl = "threefry"
    c.train.steps = 524288            # 2^19, the paper's pretraining length
    c.train.log_every = 100
    c.train.progress = True

    c.eval = ml_collections.ConfigDict()
    c.eval.every = 10000
    c.eval.num_batches = 50
    c.eval.batch_size = 128

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every = 10000
    c.checkpoint.keep = 2
    c.checkpoint.best_metric = "val/loss"
    c.checkpoint.best_mode = "min"
    c.checkpoint.async_save = True

    c.init_from = ml_collections.ConfigDict()
    c.init_from.workdir = ""
    c.init_from.step = "latest"
    c.init_from.mapping = (("params", "params"),)

    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1
    c.mesh.fsdp = 1
    c.mesh.tensor = 1

    c.sharding = ml_collections.ConfigDict()
    c.sharding.rules = (
        ("batch", ("data", "fsdp")),
        ("vocab", "tensor"),
        ("embed", "fsdp"),
        ("mlp", "tensor"),
        ("heads", "tensor"),
        ("kv", None),
        ("length", None),
        ("relpos_buckets", None),
    )

    c.sample = ml_collections.ConfigDict()
    c.sample.prompt = "The <extra_id_0> of the river <extra_id_1> the town"
    c.sample.max_new_tokens = 32
    c.sample.temperature = 0.0
    c.sample.top_k = 0

    if arg == "v1_0":                 # the paper's T5-small
        c.model.num_layers = 6
        c.model.num_decoder_layers = 6
        c.model.num_heads = 8
        c.model.head_size = 0
        c.model.mlp_dim = 2048
        c.model.mlp_activation = "relu"
        c.model.mlp_gated = False
        c.model.tie_embeddings = True
        c.model.dropout = 0.1
    elif arg in ("smoke", "cpu"):     # smoke: ~1 minute on 2 CPU cores; cpu: the same T5, 3,000 steps
        c.batch_size = 32
        c.data.path = os.path.join(_SHARED, "tinyshakespeare", "input.txt")
        c.data.tokenizer = "char"     # 65 characters + [PAD] </s> and 3 sentinels
        c.data.seq_len = 64           # 70 raw characters -> 64 inputs, 14 targets
        c.model.vocab_size = 80
        c.model.num_layers = 2
        c.model.num_decoder_layers = 2
        c.model.num_heads = 4
        c.model.head_size = 16
        c.model.embed_dim = 64
        c.model.mlp_dim = 128
        c.model.max_len = 64
        c.model.dtype = "float32"
        c.optimizer.lr = 3e-3
        c.optimizer.warmup_steps = 20
        c.optimizer.decay_steps = 200
        c.train.steps = 200
        c.train.log_every = 20
        c.eval.every = 100
        c.eval.num_batches = 8
        c.eval.batch_size = 32
        c.checkpoint.every = 100
        c.sample.prompt = "ROMEO: I <extra_id_0> thee, <extra_id_1>."
        if arg == "cpu":              # past the smoke's plateau (2.21-2.24 by step 400): the
            c.optimizer.decay_steps = 3000    # val loss drops from 2.58 (step 100) to 1.87,
            c.train.steps = 3000              # 0.73x, with a second fall after step ~1,600
            c.checkpoint.every = 1000         # (text_objectives.md); ~6 min on 2 loaded cores
    elif arg:
        raise ValueError(f"unknown variant {arg!r} of t5_small (known: v1_0, smoke, cpu)")
    return c
