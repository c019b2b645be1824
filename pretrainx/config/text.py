"""Text family presets: the data section, GPT / BERT / T5 models, their sharding and samples.

``gpt``, ``bert`` and ``t5`` are whole runs (``base.runner`` plus the family's sections) at the
size of the family's reference recipe in ``configs/``, with its ``smoke`` (and ``cpu``) sizes; a
recipe calls one and states what differs. Every default a text run reads is shown here.
"""
from __future__ import annotations

import os

import ml_collections

from pretrainx.config import base

_CHECKOUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def shared_data(*parts: str) -> str:
    """A file of the shared data folder beside a checkout of this repository (../shared/data)."""
    return os.path.normpath(os.path.join(_CHECKOUT, "..", "shared", "data", *parts))


def checkout_path(*parts: str) -> str:
    """A path inside this checkout, e.g. a tokenizer trained into workdirs/tokenizers."""
    return os.path.normpath(os.path.join(_CHECKOUT, *parts))


SHAKESPEARE = shared_data("tinyshakespeare", "input.txt")
WIKITEXT = shared_data("wikitext-2", "valid.txt")


def text_data(path: str = SHAKESPEARE, tokenizer: str = "char", seq_len: int = 256) -> ml_collections.ConfigDict:
    d = ml_collections.ConfigDict()
    d.kind = "text"
    d.path = path                     # a text file, a folder of them, "stdlib" (Python's own source)
    d.tfds_name = ""                  # e.g. "tiny_shakespeare": read through TFDS instead of path
    d.tfds_data_dir = ""
    d.tfds_text_key = "text"
    d.max_bytes = 0                   # 0: the whole corpus
    d.text_key = "text"               # kind "jsonl": the field of each record that holds the text
    d.max_docs = 0                    # kind "jsonl": 0 reads every record
    d.tokenizer = tokenizer           # "char" | "byte" | "bpe:N" (trained now) | a saved tokenizer's dir
    d.val_fraction = 0.1              # nanoGPT: first 90 % train, last 10 % val
    d.split = "chars"                 # nanoGPT's split by character position | "documents"
    d.doc_separator = ""              # "": the corpus is one document; "\n\n" would cut paragraphs
    d.packing = "stream"              # one token stream read as windows | "greedy"/"concat"/"pad" rows
    d.seq_len = seq_len
    d.sampling = "random"             # "random": nanoGPT's random windows | "sequential"
    d.decode_errors = "replace"       # bytes that are not UTF-8 (non-byte tokenizers): "replace"
                                      # with U+FFFD and warn with their count | "strict": refuse
    d.cache_min_mb = 64.0             # a "stream" corpus this big is tokenized once and cached
                                      # (data/text_cache.py; same batches); 0: never cache
    d.cache_dir = ""                  # "": $PRETRAINX_TOKEN_CACHE or ~/.cache/pretrainx/tokens
    return d


def numpy_data(path: str, seq_len: int = 256) -> ml_collections.ConfigDict:
    """Arrays already made (data/sources.py): a .npy token stream read as windows, or a .npz of
    named rows."""
    return ml_collections.ConfigDict(dict(
        kind="numpy", path=path,
        val_fraction=0.1,             # the last rows (or tokens) are the validation split
        sampling="random",            # token streams: "random" windows | "sequential"
        seq_len=seq_len))


def shards_data(path: str = "", seq_len: int = 1024) -> ml_collections.ConfigDict:
    """Token shards made by ``pretrainx tokenize`` (data/shards.py): memory-mapped, so start-up
    and memory do not grow with the corpus."""
    return ml_collections.ConfigDict(dict(
        kind="shards",
        path=path,                    # the shards folder (holds manifest.json)
        sources="",                   # a mixture instead of path: "name:folder:weight,..." e.g.
                                      # "web:/data/web:0.7,books:/data/books:0.3"; each row draws
                                      # its folder with its weight (data/mixtures.py); every
                                      # folder holds the same tokenizer; changing it on resume
                                      # applies from the resume step and is recorded
        tokenizer="",                 # "": the folder's tokenizer.json | a saved tokenizer, which
                                      # must be the one the shards were made with
        packing="stream",             # windows of the token stream | "concat": the same windows
                                      # cut where documents begin (segment ids, positions)
        sampling="random",            # "random": nanoGPT's random windows | "sequential"
        seq_len=seq_len))             # validation: the manifest's split (tokenize --val-fraction)


def read_shards(c: ml_collections.ConfigDict, folder: str) -> ml_collections.ConfigDict:
    """The ``shards`` flag of the GPT-2, BERT and T5 recipes: the run reads ``folder``, made once by
    ``pretrainx tokenize`` with the run's tokenizer, instead of reading and tokenizing its text at
    each start; the rest of the recipe is unchanged."""
    c.data = shards_data(folder, seq_len=c.data.seq_len)
    return c


def gpt_model() -> ml_collections.ConfigDict:
    """nanoGPT's shakespeare_char GPT (10.7M parameters)."""
    m = ml_collections.ConfigDict()
    m.vocab_size = 65                 # the 65 distinct characters of Tiny Shakespeare
    m.num_layers = 6
    m.num_heads = 6
    m.embed_dim = 384
    m.mlp_ratio = 4
    m.max_len = 256                   # learned position table
    m.dropout = 0.2                   # residual and embedding dropout
    m.attention_dropout = 0.2         # nanoGPT drops the attention weights with the same p
    m.use_bias = False                # nanoGPT's shakespeare_char sets bias=False
    m.tie_embeddings = True
    m.rope = False                    # learned absolute positions, as GPT-2
    m.dtype = "float32"               # compute dtype; "bfloat16" keeps fp32 master weights
    m.remat = False
    m.attention = "auto"              # "auto" | "xla" | "cudnn" (jax.nn.dot_product_attention)
    m.embed_lookup = "auto"           # one-hot matmul for small tables, any on a GPU | "gather" | "onehot"
    m.dense_grads = "auto"            # kernel gradients inputs-first on a CPU | "inputs_first" | "jax"
    m.logits_dtype = "float32"        # "float32" | "compute" (bf16 logits under bf16 compute)
    m.attention_kind = "causal"       # "causal" | "bidirectional" | "prefix" (models/transformer.py)
    # --- what tells GPT-2, BERT, T5 and Llama apart (GPT-2's values here) -----------------------
    m.head_size = 0                   # per-head width; 0: embed_dim // num_heads
    m.mlp_dim = 0                     # MLP hidden width; 0: mlp_ratio * embed_dim
    m.mlp_activation = "gelu_tanh"    # "gelu_tanh" (GPT-2) | "gelu" (BERT, erf) | "relu" | "silu" | "relu2"
    m.mlp_gated = False               # act(x W) * (x V): T5 v1.1's gated GELU, Llama's SwiGLU
    m.norm = "layernorm"              # "layernorm" | "rmsnorm"
    m.norm_eps = 1e-5
    m.norm_position = "pre"           # "pre" (GPT-2, T5, Llama) | "post" (BERT as published)
    m.scaled_attention = True         # 1/sqrt(d) in the attention logits (T5 folds it into its init)
    m.init_style = "gpt"              # "gpt": N(0, 0.02), residual outputs / sqrt(2L) | "bert" | "t5"
    m.type_vocab_size = 0             # BERT's sentence A/B embeddings; 0: none
    m.relative_buckets = 0            # T5's relative position buckets; 0: none
    m.relative_max_distance = 128     # T5: distances past this share the last bucket
    m.num_decoder_layers = 0          # > 0: an encoder-decoder (T5)
    m.tied_output_scale = True        # T5, tied head: d_model^-0.5 on the decoder output (v1.0)
    m.num_kv_heads = 0                # key/value heads; 0: num_heads; fewer: GQA; 1: multi-query
    m.qkv_bias = False                # biases on q/k/v even when use_bias is False (Qwen2)
    m.rope_theta = 10000.0            # RoPE base (when rope); Llama 3: 500,000; Qwen2: 1,000,000
    m.rope_scaling = "none"           # "none" | "llama3" (Llama 3.1+ long-context frequencies)
    m.rope_scaling_factor = 8.0       # llama3: long wavelengths divided by this (3.1: 8, 3.2: 32)
    m.rope_low_freq_factor = 1.0      # llama3: wavelengths > original_max_len / this: scaled
    m.rope_high_freq_factor = 4.0     # llama3: wavelengths < original_max_len / this: kept
    m.rope_original_max_len = 8192    # llama3: the context length before the extension
    # --- modern GPT options (modded-nanogpt's speedrun; off: GPT-2). Also there: rope (above,
    # in place of wpe), tie_embeddings=False (an untied head), mlp_activation="relu2" (ReLU^2)
    m.qk_norm = False                 # RMSNorm on q and k per head, before RoPE
    m.zero_init_proj = False          # attention out / MLP proj kernels start at 0
    return m


def _encoder_fields(m: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """BERT-base's values of the fields that tell it from GPT-2 (Devlin et al. 2019)."""
    m.arch = "bert"                   # the network a `classify` head sits on (mlm is BERT)
    return base.change(m, {"type_vocab_size": 2,         # sentence A/B (all A without NSP)
                           "norm_eps": 1e-12, "norm_position": "post",
                           "mlp_activation": "gelu",     # the paper's erf GELU
                           "init_style": "bert"})        # N(0, 0.02) everywhere


def bert_model() -> ml_collections.ConfigDict:
    """BERT-base: 12 layers, 768 wide, 12 heads, 110M parameters."""
    m = _encoder_fields(gpt_model())
    return base.change(m, {"vocab_size": 30522, "num_layers": 12, "num_heads": 12, "embed_dim": 768,
                           "max_len": 512, "dropout": 0.1, "attention_dropout": 0.1, "use_bias": True,
                           "attention_kind": "bidirectional", "dtype": "bfloat16"})


def t5_model() -> ml_collections.ConfigDict:
    """T5-small v1.1: 8+8 layers, 512 wide, 6 heads of 64, gated-GELU MLP of 1024, untied output."""
    return base.change(bert_model(), {
        "arch": "t5", "vocab_size": 32128, "num_layers": 8, "num_decoder_layers": 8, "num_heads": 6,
        "head_size": 64, "embed_dim": 512, "mlp_dim": 1024,
        "mlp_activation": "gelu_tanh", "mlp_gated": True,   # T5 v1.1's gated GELU (tanh, as mesh TF)
        "dropout": 0.0, "attention_dropout": 0.0, "use_bias": False, "tie_embeddings": False,
        "norm": "rmsnorm", "norm_eps": 1e-6, "norm_position": "pre",
        "scaled_attention": False,    # T5 folds 1/sqrt(d) into its init
        "init_style": "t5", "relative_buckets": 32, "type_vocab_size": 0})


def llama_model() -> ml_collections.ConfigDict:
    """Llama-3.2-1B (Meta's config.json, 1,235,814,400 parameters): GQA, SwiGLU, RMSNorm, RoPE
    with Llama 3.1's frequency scaling, no biases, the output head tied to the embedding.
    Qwen2 is the same network with q/k/v biases (``qkv_bias``)."""
    m = _encoder_fields(gpt_model())
    m.arch = "gpt"                    # a decoder: a `classify` head reads its last token
    m = base.change(m, {
        "vocab_size": 128256, "num_layers": 16, "num_heads": 32, "embed_dim": 2048,
        "head_size": 64,              # hidden / heads here; Qwen3-style models set it apart
        "mlp_dim": 8192,              # SwiGLU hidden width (intermediate_size)
        "max_len": 8192,              # KV-cache slots and the longest window trained on (no
                                      # position table: RoPE); the published model reaches 131072
        "dropout": 0.0, "attention_dropout": 0.0, "use_bias": False, "tie_embeddings": True,
        "rope": True, "dtype": "bfloat16", "type_vocab_size": 0,
        "norm": "rmsnorm", "norm_eps": 1e-5, "norm_position": "pre",
        "mlp_activation": "silu", "mlp_gated": True, "init_style": "gpt",
        "attention_kind": "causal",
        "num_kv_heads": 8,            # GQA: 4 query heads share each key/value head
        "rope_theta": 500000.0, "rope_scaling": "llama3", "rope_scaling_factor": 32.0})
    return m


def text_rules(*extra) -> tuple:
    """Logical axis -> mesh axes. Parameters carry the logical names (models/transformer.py)."""
    return (("batch", ("data", "fsdp")), ("vocab", "tensor"), ("embed", "fsdp"), ("mlp", "tensor"),
            ("heads", "tensor"), ("kv", None), ("length", None)) + extra


def text_sample(prompt: str = "\n", max_new_tokens: int = 500, temperature: float = 0.8,
                top_k: int = 200) -> ml_collections.ConfigDict:
    """What the text samples at each eval and ``pretrainx sample`` show (temperature 0: greedy)."""
    return ml_collections.ConfigDict(dict(prompt=prompt, max_new_tokens=max_new_tokens,
                                          temperature=temperature, top_k=top_k))


def _text_run(objective, model, data, *, seed=0, batch_size=32) -> ml_collections.ConfigDict:
    c = base.runner(objective, seed=seed, batch_size=batch_size)
    c.data = data
    c.model = model
    c.loss = ml_collections.ConfigDict({"label_smoothing": 0.0})
    c.sharding = ml_collections.ConfigDict({"rules": text_rules()})
    return c


def gpt(flags=frozenset(), objective: str = "clm") -> ml_collections.ConfigDict:
    """nanoGPT's train_shakespeare_char (configs/gpt/shakespeare_char.py); ``smoke``: < 1 minute on
    2 CPU cores, still learns real structure; ``cpu``: nanoGPT README's CPU "baby GPT"."""
    c = _text_run(objective, gpt_model(), text_data(), seed=1337, batch_size=64)
    c.sample = text_sample()
    c = base.change(c, {"optimizer.b2": 0.99, "optimizer.weight_decay": 0.1, "train.log_every": 10,
                        "eval.num_batches": 200})        # nanoGPT eval_iters
    if "smoke" in flags:
        c = base.change(c, {"batch_size": 32, "data.seq_len": 64, "model.max_len": 64,
                            "model.num_layers": 2, "model.num_heads": 4, "model.embed_dim": 128,
                            "model.dropout": 0.0, "model.attention_dropout": 0.0,
                            "optimizer.lr": 3e-3, "optimizer.end_lr": 3e-4, "optimizer.warmup_steps": 20,
                            "train.log_every": 20, "eval.num_batches": 10, "eval.batch_size": 32,
                            "sample.max_new_tokens": 100})
        c = base.length(c, 400, every=200)
    elif "cpu" in flags:
        # --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000
        # --lr_decay_iters=2000 --dropout=0.0 --eval_iters=20; nanoGPT reports val loss 1.88
        c = base.change(c, {"batch_size": 12, "data.seq_len": 64, "model.max_len": 64,
                            "model.num_layers": 4, "model.num_heads": 4, "model.embed_dim": 128,
                            "model.dropout": 0.0, "model.attention_dropout": 0.0,
                            "eval.num_batches": 20, "eval.batch_size": 12})
        c = base.length(c, 2000)
    return c


def llama(flags=frozenset(), objective: str = "clm") -> ml_collections.ConfigDict:
    """Llama-3.2-1B's shape on a byte-level corpus to continue pretraining on (the imported
    weights come through ``init_from``, see ``pretrainx import-hf``); ``smoke``: a 2-layer,
    128-wide Llama (GQA 4/2) on Tiny Shakespeare characters, < 1 minute on 2 CPU cores."""
    c = _text_run(objective, llama_model(), text_data(), seed=0, batch_size=32)
    c.sample = text_sample()
    c = base.change(c, {"data.seq_len": 2048, "optimizer.lr": 3e-4, "optimizer.end_lr": 3e-5,
                        "optimizer.b2": 0.95, "optimizer.weight_decay": 0.1,
                        "eval.num_batches": 20, "eval.batch_size": 32})
    c = base.length(c, 10000, every=1000)
    if "smoke" in flags:
        c = base.change(c, {"data.seq_len": 64, "model.max_len": 64, "model.vocab_size": 65,
                            "model.num_layers": 2, "model.num_heads": 4, "model.num_kv_heads": 2,
                            "model.embed_dim": 128, "model.head_size": 32, "model.mlp_dim": 344,
                            "model.rope_theta": 10000.0, "model.rope_scaling": "none",
                            "model.dtype": "float32", "optimizer.lr": 3e-3, "optimizer.end_lr": 3e-4,
                            "optimizer.warmup_steps": 20, "train.log_every": 20,
                            "eval.num_batches": 10, "eval.batch_size": 32, "sample.max_new_tokens": 100})
        c = base.length(c, 400, every=200)
    return c


def bert(flags=frozenset(), objective: str = "mlm") -> ml_collections.ConfigDict:
    """BERT-base's run (configs/bert/bert_base.py) without its objective section; a masked LM's
    has the fill-mask prompt of ``pretrainx sample`` and the eval samples (an imported BERT too).
    ``smoke``: a 2-layer, 64-wide BERT on Tiny Shakespeare characters (~1 minute on 2 CPU cores)."""
    tokenizer = checkout_path("workdirs", "tokenizers", "wikitext2_wp30k")
    c = _text_run(objective, bert_model(), text_data(WIKITEXT, tokenizer, seq_len=512), batch_size=256)
    if objective == "mlm":        # temperature 0: each [MASK] gets its top candidate
        c.sample = text_sample("The [MASK] of the river", max_new_tokens=0, temperature=0.0, top_k=0)
    c.sharding.rules = text_rules(("token_types", None), ("embed_out", None), ("relpos_buckets", None),
                                  ("classes", None))
    c = base.change(c, {"optimizer.lr": 1e-4, "optimizer.end_lr": 0.0, "optimizer.warmup_steps": 10000,
                        "optimizer.eps": 1e-6, "optimizer.weight_decay": 0.01,
                        "eval.num_batches": 50, "eval.batch_size": 256})
    c = base.length(c, 1_000_000, every=10_000)
    if "smoke" in flags:              # 65 characters + [PAD] [CLS] [SEP] [MASK]
        c = base.change(c, {"batch_size": 32, "data.path": SHAKESPEARE, "data.tokenizer": "char",
                            "data.seq_len": 64, "model.vocab_size": 72, "model.max_len": 64,
                            "model.num_layers": 2, "model.num_heads": 4, "model.embed_dim": 64,
                            "model.rope": True,   # on top of the learned table: 300 steps learn neighbours
                            "model.dropout": 0.0, "model.attention_dropout": 0.0, "model.dtype": "float32",
                            "optimizer.lr": 2e-3, "optimizer.warmup_steps": 30, "train.log_every": 20,
                            "eval.num_batches": 8, "eval.batch_size": 32})
        c = base.length(c, 300, every=150)
    return c


def t5(flags=frozenset(), objective: str = "span_corruption") -> ml_collections.ConfigDict:
    """T5-small v1.1's run (configs/t5/t5_small.py) without its objective section. ``v1_0``: the
    paper's T5-small; ``smoke``: 2+2 layers, 64 wide, on Tiny Shakespeare characters; ``cpu``: the
    smoke's T5 for 3,000 steps."""
    tokenizer = checkout_path("workdirs", "tokenizers", "wikitext2_uni32k")
    c = _text_run(objective, t5_model(), text_data(WIKITEXT, tokenizer, seq_len=512), batch_size=128)
    c.sharding.rules = text_rules(("relpos_buckets", None))
    c.sample = text_sample("The <extra_id_0> of the river <extra_id_1> the town", 32, 0.0, 0)
    c = base.change(c, {"optimizer.end_lr": 1e-5, "optimizer.warmup_steps": 10000,
                        "eval.num_batches": 50, "eval.batch_size": 128})
    c = base.length(c, 524288, every=10_000)           # 2^19, the paper's pretraining length
    if "v1_0" in flags:
        c = base.change(c, {"model.num_layers": 6, "model.num_decoder_layers": 6, "model.num_heads": 8,
                            "model.head_size": 0, "model.mlp_dim": 2048, "model.mlp_activation": "relu",
                            "model.mlp_gated": False, "model.tie_embeddings": True, "model.dropout": 0.1})
    elif flags & {"smoke", "cpu"}:    # 65 characters + [PAD] </s> and 3 sentinels; 70 raw -> 64 + 14
        c = base.change(c, {"batch_size": 32, "data.path": SHAKESPEARE, "data.tokenizer": "char",
                            "data.seq_len": 64, "model.vocab_size": 80, "model.num_layers": 2,
                            "model.num_decoder_layers": 2, "model.num_heads": 4, "model.head_size": 16,
                            "model.embed_dim": 64, "model.mlp_dim": 128, "model.max_len": 64,
                            "model.dtype": "float32", "optimizer.lr": 3e-3, "optimizer.warmup_steps": 20,
                            "train.log_every": 20, "eval.num_batches": 8, "eval.batch_size": 32,
                            "sample.prompt": "ROMEO: I <extra_id_0> thee, <extra_id_1>."})
        c = base.length(c, 200, every=100)
    if "cpu" in flags:                # past the smoke's plateau: val 2.58 (step 100) -> 1.87
        c = base.change(base.length(c, 3000), {"checkpoint.every": 1000})
    return c
