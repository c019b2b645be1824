"""BERT-base (Devlin et al. 2019): 12 layers, 768 wide, 12 heads, 110M parameters, masked LM
with RoBERTa's dynamic masking. Every setting of the BERT recipes is here; the other configs in
this folder start from it.

  pretrainx tokenizer train --corpus ../shared/data/wikitext-2/valid.txt --kind wordpiece \
      --vocab-size 30522 --out workdirs/tokenizers/wikitext2_wp30k
  pretrainx train --config configs/bert/bert_base.py --workdir workdirs/bert_base   # a GPU
  pretrainx train --config configs/bert/bert_base.py:smoke --workdir /tmp/bert_smoke  # < 1 min CPU
  pretrainx sample --workdir /tmp/bert_smoke --prompt "ROMEO: I [MASK] thee"

Paper numbers: post-LN, GELU (erf), LayerNorm eps 1e-12, N(0, 0.02) init, dropout 0.1, Adam
lr 1e-4 with 10k warm-up steps and linear decay, weight decay 0.01, batch 256 x 512 tokens,
15 % masking with 80/10/10 replacement. The data here is WikiText-2's validation split (the only
part of it in ../shared/data): a placeholder for a real corpus at this size (``data.path``).
The `:smoke` variant is a 2-layer, 64-wide BERT on Tiny Shakespeare characters ([MASK] and the
other special tokens appended to the 65 characters) with rotary positions on top of the
learned table: with the table alone it stays near the unigram baseline for 300 steps (masked-token
accuracy 0.21 against 0.15), with RoPE it reaches 0.38 (2-core CPU, seed 0).
"""
import os

import ml_collections

_HERE = os.path.dirname(os.path.abspath(__file__))
_SHARED = os.path.normpath(os.path.join(_HERE, "..", "..", "..", "shared", "data"))


def get_config(arg: str = ""):
    c = ml_collections.ConfigDict()
    c.objective = "mlm"
    c.seed = 0
    c.batch_size = 256                # global

    c.data = ml_collections.ConfigDict()
    c.data.kind = "text"
    c.data.path = os.path.join(_SHARED, "wikitext-2", "valid.txt")
    c.data.tfds_name = ""
    c.data.tfds_data_dir = ""
    c.data.tfds_text_key = "text"
    c.data.max_bytes = 0
    c.data.tokenizer = os.path.normpath(os.path.join(_HERE, "..", "..", "workdirs", "tokenizers",
                                                     "wikitext2_wp30k"))
    c.data.val_fraction = 0.1
    c.data.split = "chars"            # "chars" | "documents"
    c.data.doc_separator = ""
    c.data.packing = "stream"         # stream rows start with [CLS]; packed rows keep <s>...</s>
    c.data.seq_len = 512
    c.data.sampling = "random"

    c.model = ml_collections.ConfigDict()
    c.model.arch = "bert"             # the network a `classify` head sits on (mlm is BERT)
    c.model.vocab_size = 30522        # >= the tokenizer's, special tokens included
    c.model.num_layers = 12
    c.model.num_heads = 12
    c.model.embed_dim = 768
    c.model.mlp_ratio = 4
    c.model.mlp_dim = 0               # 0: mlp_ratio * embed_dim = 3072
    c.model.head_size = 0             # 0: embed_dim // num_heads = 64
    c.model.max_len = 512             # learned position table
    c.model.type_vocab_size = 2       # sentence A/B embeddings (all A without NSP)
    c.model.dropout = 0.1
    c.model.attention_dropout = 0.1
    c.model.use_bias = True
    c.model.tie_embeddings = True     # the MLM head's output layer is the token embedding table
    c.model.norm = "layernorm"
    c.model.norm_eps = 1e-12
    c.model.norm_position = "post"    # "post" as the paper | "pre" (trains more stably when deep)
    c.model.mlp_activation = "gelu"   # the erf GELU of the paper
    c.model.mlp_gated = False
    c.model.scaled_attention = True
    c.model.init_style = "bert"       # N(0, 0.02) everywhere
    c.model.rope = False
    c.model.relative_buckets = 0
    c.model.relative_max_distance = 128
    c.model.num_decoder_layers = 0
    c.model.attention_kind = "bidirectional"
    c.model.dtype = "bfloat16"
    c.model.remat = False
    c.model.attention = "auto"
    c.model.embed_lookup = "auto"
    c.model.logits_dtype = "float32"

    c.mlm = ml_collections.ConfigDict()
    c.mlm.rate = 0.15                 # BERT's masking rate (a schedule's final rate)
    c.mlm.rate_schedule = "constant"  # "constant" | "linear" | "cosine" (rate_start -> rate)
    c.mlm.rate_start = 0.15
    c.mlm.eval_rate = 0.15            # validation masks at this rate whatever the schedule
    c.mlm.whole_word = False          # Google's --do_whole_word_mask

    c.loss = ml_collections.ConfigDict()
    c.loss.label_smoothing = 0.0

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.lr = 1e-4
    c.optimizer.end_lr = 0.0
    c.optimizer.schedule = "cosine"   # the paper decays linearly; cosine to 0 is close
    c.optimizer.warmup_steps = 10000
    c.optimizer.decay_steps = 1000000
    c.optimizer.decay_rate = 0.1
    c.optimizer.b1 = 0.9
    c.optimizer.b2 = 0.999
    c.optimizer.eps = 1e-6
    c.optimizer.weight_decay = 0.01
    c.optimizer.decay_mask = "matrices"
    c.optimizer.clip_norm = 1.0
    c.optimizer.grad_accum = 1
    c.optimizer.ema_decay = 0.0
    c.optimizer.mu_dtype = "float32"

    c.train = ml_collections.ConfigDict()
    c.train.rng_impl = "threefry"
    c.train.steps = 1000000
    c.train.log_every = 100
    c.train.progress = True

    c.eval = ml_collections.ConfigDict()
    c.eval.every = 10000
    c.eval.num_batches = 50
    c.eval.batch_size = 256

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
        ("token_types", None),
        ("embed_out", None),
        ("relpos_buckets", None),
        ("classes", None),
    )

    c.sample = ml_collections.ConfigDict()
    c.sample.prompt = "The [MASK] of the river"
    c.sample.max_new_tokens = 0
    c.sample.temperature = 0.0
    c.sample.top_k = 0

    if arg == "smoke":                # ~1 minute on 2 CPU cores; learns character statistics
        c.batch_size = 32
        c.data.path = os.path.join(_SHARED, "tinyshakespeare", "input.txt")
        c.data.tokenizer = "char"     # 65 characters + [PAD] [CLS] [SEP] [MASK]
        c.data.seq_len = 64
        c.model.vocab_size = 72
        c.model.max_len = 64
        c.model.num_layers = 2
        c.model.num_heads = 4
        c.model.embed_dim = 64
        c.model.rope = True           # on top of the learned table: 300 steps learn neighbours
        c.model.dropout = 0.0
        c.model.attention_dropout = 0.0
        c.model.dtype = "float32"
        c.optimizer.lr = 2e-3
        c.optimizer.warmup_steps = 30
        c.optimizer.decay_steps = 300
        c.train.steps = 300
        c.train.log_every = 20
        c.eval.every = 150
        c.eval.num_batches = 8
        c.eval.batch_size = 32
        c.checkpoint.every = 150
        c.sample.prompt = "ROMEO: I [MASK]ove thee"
    elif arg:
        raise ValueError(f"unknown variant {arg!r} of bert_base (known: smoke)")
    return c
