"""BERT and T5 checkpoints on pretrainx's encoder and encoder-decoder (see hf_families.py for
what a family is).

  BERT  ``BertForMaskedLM``: post-LN encoder, learned positions and token types, the MLM head
        (dense + activation + LayerNorm, the output tied to the word embeddings, its own bias).
        Our parameter paths are those of ``models/bert.py``.
  T5    ``T5ForConditionalGeneration``: v1.0 (ReLU MLP ``wi``, the output tied to ``shared`` and
        scaled by d_model^-0.5) and v1.1 (gated-GELU ``wi_0``/``wi_1``, untied ``lm_head``).
        One relative position table per stack, stored in its block 0; no biases, no 1/sqrt(d)
        attention scale (T5 folds it into its init). Our paths are those of ``models/t5.py``.
"""
from __future__ import annotations

from pretrainx.tools.hf_rules import Rule, UnsupportedCheckpoint, linear, same

# HF activation names -> ours (erf GELU, tanh GELU, ReLU)
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
               "relu": "relu"}
ACTIVATION_NAMES = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}


def _activation(name: str, kind: str) -> str:
    if name not in ACTIVATIONS:
        raise UnsupportedCheckpoint(f"{kind} activation {name!r} is not supported (supported: "
                                    f"{sorted(ACTIVATIONS)})")
    return ACTIVATIONS[name]


def attention_rules(hf: str, ours: str, names: tuple[str, str, str, str], E: int, H: int,
                    D: int, bias: bool) -> list[Rule]:
    """q, k, v and output torch Linears (``names`` in that order) -> ``ours``/{query,key,value,out}."""
    rules = [linear(f"{hf}.{n}.weight", f"{ours}/{p}/kernel", E, (E, H, D))
             for n, p in zip(names[:3], ("query", "key", "value"))]
    rules.append(linear(f"{hf}.{names[3]}.weight", f"{ours}/out/kernel", H * D, (H, D, E)))
    if bias:
        rules += [same(f"{hf}.{n}.bias", f"{ours}/{p}/bias", (H, D))
                  for n, p in zip(names[:3], ("query", "key", "value"))]
        rules.append(same(f"{hf}.{names[3]}.bias", f"{ours}/out/bias"))
    return rules


def layer_norm(hf: str, ours: str) -> list[Rule]:
    return [same(f"{hf}.weight", f"{ours}/scale"), same(f"{hf}.bias", f"{ours}/bias")]


def dense(hf: str, ours: str, in_dim: int, out_dim: int) -> list[Rule]:
    return [linear(f"{hf}.weight", f"{ours}/kernel", in_dim, (in_dim, out_dim)),
            same(f"{hf}.bias", f"{ours}/bias")]


# --- BERT --------------------------------------------------------------------------------------

def bert_model(hf: dict, names=frozenset()) -> dict:
    """The ``model`` fields of a BERT ``config.json``."""
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise UnsupportedCheckpoint(f"BERT position_embedding_type "
                                    f"{hf['position_embedding_type']!r}: only 'absolute'")
    return {"arch": "bert", "vocab_size": hf["vocab_size"], "num_layers": hf["num_hidden_layers"],
            "num_heads": hf["num_attention_heads"], "embed_dim": hf["hidden_size"],
            "head_size": 0, "mlp_dim": hf["intermediate_size"],
            "max_len": hf["max_position_embeddings"], "type_vocab_size": hf["type_vocab_size"],
            "use_bias": True, "tie_embeddings": bool(hf.get("tie_word_embeddings", True)),
            "norm": "layernorm", "norm_eps": hf["layer_norm_eps"], "norm_position": "post",
            "mlp_activation": _activation(hf.get("hidden_act", "gelu"), "BERT"),
            "mlp_gated": False, "attention_kind": "bidirectional", "rope": False,
            "dropout": hf.get("hidden_dropout_prob", 0.1),
            "attention_dropout": hf.get("attention_probs_dropout_prob", 0.1)}


def bert_config(m) -> dict:
    return {"architectures": ["BertForMaskedLM"], "model_type": "bert",
            "vocab_size": m.vocab_size, "num_hidden_layers": m.num_layers,
            "num_attention_heads": m.num_heads, "hidden_size": m.embed_dim,
            "intermediate_size": m.mlp_dim or m.mlp_ratio * m.embed_dim,
            "max_position_embeddings": m.max_len, "type_vocab_size": m.type_vocab_size,
            "layer_norm_eps": m.norm_eps, "hidden_act": ACTIVATION_NAMES[m.mlp_activation],
            "hidden_dropout_prob": m.dropout, "attention_probs_dropout_prob": m.attention_dropout,
            "position_embedding_type": "absolute", "tie_word_embeddings": m.tie_embeddings,
            "torch_dtype": "float32"}


def bert_rules(m) -> list[Rule]:
    E, H = m.embed_dim, m.num_heads
    D, M = E // H, m.mlp_dim or m.mlp_ratio * E
    rules = [same("bert.embeddings.word_embeddings.weight", "wte/embedding"),
             same("bert.embeddings.position_embeddings.weight", "wpe/embedding"),
             *layer_norm("bert.embeddings.LayerNorm", "ln_emb"),
             *dense("cls.predictions.transform.dense", "mlm_transform", E, E),
             *layer_norm("cls.predictions.transform.LayerNorm", "mlm_ln")]
    if m.type_vocab_size:
        rules.append(same("bert.embeddings.token_type_embeddings.weight", "wtt/embedding"))
    for i in range(m.num_layers):
        hf, ours = f"bert.encoder.layer.{i}", f"h_{i}"
        rules += attention_rules(f"{hf}.attention", f"{ours}/attn",
                                 ("self.query", "self.key", "self.value", "output.dense"), E, H, D, True)
        rules += [*layer_norm(f"{hf}.attention.output.LayerNorm", f"{ours}/ln_1"),
                  *dense(f"{hf}.intermediate.dense", f"{ours}/mlp/fc", E, M),
                  *dense(f"{hf}.output.dense", f"{ours}/mlp/proj", M, E),
                  *layer_norm(f"{hf}.output.LayerNorm", f"{ours}/ln_2")]
    if m.tie_embeddings:
        rules.append(same("cls.predictions.bias", "mlm_bias"))
    else:
        rules += [linear("cls.predictions.decoder.weight", "lm_head/kernel", E, (E, m.vocab_size)),
                  same("cls.predictions.bias", "lm_head/bias")]
    return rules


# --- T5 ----------------------------------------------------------------------------------------

def t5_model(hf: dict, names=frozenset()) -> dict:
    """The ``model`` fields of a T5 ``config.json`` (v1.0 "relu", v1.1 "gated-gelu") whose
    tensors are ``names``. The head is untied when the checkpoint stores ``lm_head.weight``:
    transformers 5 writes ``tie_word_embeddings: true`` for every T5 and says whether the
    decoder output is scaled in ``scale_decoder_outputs`` (published v1.1: false and untied)."""
    tied = "lm_head.weight" not in names
    scaled = hf.get("scale_decoder_outputs", hf.get("tie_word_embeddings", True))
    if scaled and not tied:
        raise UnsupportedCheckpoint("T5 with an untied lm_head and a scaled decoder output is not "
                                    "supported (v1.0 ties its head, v1.1 does not scale)")
    proj = hf.get("feed_forward_proj", "relu")
    gated = proj.startswith("gated-")
    # transformers reads "gated-gelu" (v1.1's name) as the tanh GELU, as Mesh TF computed it
    act = "gelu_new" if proj == "gated-gelu" else proj.removeprefix("gated-")
    return {"arch": "t5", "vocab_size": hf["vocab_size"], "num_layers": hf["num_layers"],
            "num_decoder_layers": hf.get("num_decoder_layers") or hf["num_layers"],
            "num_heads": hf["num_heads"], "head_size": hf["d_kv"], "embed_dim": hf["d_model"],
            "mlp_dim": hf["d_ff"], "max_len": hf.get("n_positions", 512),
            "mlp_activation": _activation(act, "T5"), "mlp_gated": gated,
            "use_bias": False, "tie_embeddings": tied, "tied_output_scale": bool(scaled),
            "norm": "rmsnorm", "norm_eps": hf["layer_norm_epsilon"], "norm_position": "pre",
            "scaled_attention": False, "relative_buckets": hf["relative_attention_num_buckets"],
            "relative_max_distance": hf.get("relative_attention_max_distance", 128),
            "type_vocab_size": 0, "rope": False, "dropout": hf.get("dropout_rate", 0.1),
            "attention_dropout": hf.get("dropout_rate", 0.1)}


def t5_config(m) -> dict:
    act = ACTIVATION_NAMES[m.mlp_activation]
    proj = ("gated-gelu" if act == "gelu_new" else f"gated-{act}") if m.mlp_gated else act
    return {"architectures": ["T5ForConditionalGeneration"], "model_type": "t5",
            "vocab_size": m.vocab_size, "num_layers": m.num_layers,
            "num_decoder_layers": m.num_decoder_layers or m.num_layers, "num_heads": m.num_heads,
            "d_kv": m.head_size or m.embed_dim // m.num_heads, "d_model": m.embed_dim,
            "d_ff": m.mlp_dim or m.mlp_ratio * m.embed_dim, "n_positions": m.max_len,
            "feed_forward_proj": proj,
            "layer_norm_epsilon": m.norm_eps, "relative_attention_num_buckets": m.relative_buckets,
            "relative_attention_max_distance": m.relative_max_distance,
            "dropout_rate": m.dropout, "tie_word_embeddings": m.tie_embeddings,
            "scale_decoder_outputs": m.tie_embeddings and m.tied_output_scale,
            "is_encoder_decoder": True, "decoder_start_token_id": 0, "torch_dtype": "float32"}


def _t5_mlp(hf: str, ours: str, m, E: int, M: int) -> list[Rule]:
    ins = (("wi_0", "fc"), ("wi_1", "gate")) if m.mlp_gated else (("wi", "fc"),)
    rules = [linear(f"{hf}.DenseReluDense.{n}.weight", f"{ours}/mlp/{p}/kernel", E, (E, M))
             for n, p in ins]
    return rules + [linear(f"{hf}.DenseReluDense.wo.weight", f"{ours}/mlp/proj/kernel", M, (M, E)),
                    same(f"{hf}.layer_norm.weight", f"{ours}/ln_2/scale")]


def t5_rules(m) -> list[Rule]:
    E, H = m.embed_dim, m.num_heads
    D, M = m.head_size or E // H, m.mlp_dim or m.mlp_ratio * E
    qkvo = ("q", "k", "v", "o")
    rules = [same("shared.weight", "token_embedder/embedding")]
    for stack in ("encoder", "decoder"):
        rules += [same(f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                       f"{stack}/relpos/rel_embedding"),
                  same(f"{stack}.final_layer_norm.weight", f"{stack}/ln_f/scale")]
        count = m.num_layers if stack == "encoder" else (m.num_decoder_layers or m.num_layers)
        for i in range(count):
            hf, ours = f"{stack}.block.{i}.layer", f"{stack}/h_{i}"
            rules += attention_rules(f"{hf}.0.SelfAttention", f"{ours}/attn", qkvo, E, H, D, False)
            rules.append(same(f"{hf}.0.layer_norm.weight", f"{ours}/ln_1/scale"))
            if stack == "decoder":
                rules += attention_rules(f"{hf}.1.EncDecAttention", f"{ours}/cross_attn", qkvo,
                                         E, H, D, False)
                rules.append(same(f"{hf}.1.layer_norm.weight", f"{ours}/ln_cross/scale"))
            rules += _t5_mlp(f"{hf}.{2 if stack == 'decoder' else 1}", ours, m, E, M)
    if not m.tie_embeddings:
        rules.append(linear("lm_head.weight", "lm_head/kernel", E, (E, m.vocab_size)))
    return rules
