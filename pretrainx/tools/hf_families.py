"""How Hugging Face checkpoints map onto pretrainx's transformer: one entry per family.

A family gives (1) the ``model`` section a Hugging Face ``config.json`` describes (and back),
and (2) the tensor rules: each Hugging Face tensor, the pretrainx parameter(s) it becomes, and
the two pure reshapes between them (transposes and reshapes only, so a round trip is bit-exact).

  GPT-2   ``GPT2LMHeadModel``: Conv1D weights stored (in, out); q, k and v fused in ``c_attn``.
  Llama   ``LlamaForCausalLM`` (and Qwen2, Mistral without a sliding window): Linear weights
          stored (out, in); q/k/v/o, gate/up/down projections; RMSNorm scales only.
  BERT, T5  in hf_families_encoders.py.

Our parameter paths are those of ``models/gpt.py``'s GPT ("h_0/attn/query/kernel", ...).
A checkpoint this module cannot represent exactly is refused with one line saying why.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from pretrainx.tools import hf_families_encoders as enc
from pretrainx.tools.hf_rules import Rule, UnsupportedCheckpoint, conv1d, fused_qkv, linear, same


# --- GPT-2 -----------------------------------------------------------------------------------

def gpt2_model(hf: dict, names=frozenset()) -> dict:
    """The ``model`` fields of a GPT-2 ``config.json``."""
    if hf.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
        raise UnsupportedCheckpoint(f"GPT-2 activation {hf['activation_function']!r}: only "
                                    f"'gelu_new' (tanh GELU) is supported")
    E = hf["n_embd"]
    return {"arch": "gpt", "vocab_size": hf["vocab_size"], "num_layers": hf["n_layer"],
            "num_heads": hf["n_head"], "num_kv_heads": 0, "embed_dim": E, "head_size": 0,
            "mlp_dim": hf.get("n_inner") or 4 * E, "max_len": hf["n_positions"], "use_bias": True,
            "qkv_bias": False, "tie_embeddings": hf.get("tie_word_embeddings", True), "rope": False,
            "rope_scaling": "none", "norm": "layernorm", "norm_eps": hf["layer_norm_epsilon"],
            "mlp_activation": "gelu_tanh", "mlp_gated": False}


def gpt2_config(m) -> dict:
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
            "vocab_size": m.vocab_size, "n_layer": m.num_layers, "n_head": m.num_heads,
            "n_embd": m.embed_dim, "n_inner": m.mlp_dim or None, "n_positions": m.max_len,
            "layer_norm_epsilon": m.norm_eps, "activation_function": "gelu_new",
            "tie_word_embeddings": m.tie_embeddings, "torch_dtype": "float32"}


def gpt2_rules(m) -> list[Rule]:
    E, H = m.embed_dim, m.num_heads
    D, M = E // H, m.mlp_dim or 4 * E
    rules = [same("transformer.wte.weight", "wte/embedding"),
             same("transformer.wpe.weight", "wpe/embedding"),
             same("transformer.ln_f.weight", "ln_f/scale"), same("transformer.ln_f.bias", "ln_f/bias")]
    for i in range(m.num_layers):
        hf, ours = f"transformer.h.{i}", f"h_{i}"
        rules += [same(f"{hf}.ln_1.weight", f"{ours}/ln_1/scale"),
                  same(f"{hf}.ln_1.bias", f"{ours}/ln_1/bias"),
                  same(f"{hf}.ln_2.weight", f"{ours}/ln_2/scale"),
                  same(f"{hf}.ln_2.bias", f"{ours}/ln_2/bias"),
                  fused_qkv(f"{hf}.attn.c_attn.weight", f"{ours}/attn", "kernel", (E, H, D)),
                  fused_qkv(f"{hf}.attn.c_attn.bias", f"{ours}/attn", "bias", (H, D)),
                  conv1d(f"{hf}.attn.c_proj.weight", f"{ours}/attn/out/kernel", E, (H, D, E)),
                  same(f"{hf}.attn.c_proj.bias", f"{ours}/attn/out/bias"),
                  conv1d(f"{hf}.mlp.c_fc.weight", f"{ours}/mlp/fc/kernel", E, (E, M)),
                  same(f"{hf}.mlp.c_fc.bias", f"{ours}/mlp/fc/bias"),
                  conv1d(f"{hf}.mlp.c_proj.weight", f"{ours}/mlp/proj/kernel", M, (M, E)),
                  same(f"{hf}.mlp.c_proj.bias", f"{ours}/mlp/proj/bias")]
    if not m.tie_embeddings:
        rules.append(linear("lm_head.weight", "lm_head/kernel", E, (E, m.vocab_size)))
    return rules


# --- Llama, Qwen2, Mistral ---------------------------------------------------------------------

def _rope_fields(hf: dict) -> dict:
    """RoPE base and scaling, from ``rope_theta`` / ``rope_scaling`` (transformers 4.x) or
    ``rope_parameters`` (5.x)."""
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    kind = rope.get("rope_type", rope.get("type", "default"))
    fields = {"rope_theta": float(hf.get("rope_theta", rope.get("rope_theta", 10000.0))),
              "rope_scaling": "none"}
    if kind == "llama3":
        fields.update(rope_scaling="llama3", rope_scaling_factor=float(rope["factor"]),
                      rope_low_freq_factor=float(rope["low_freq_factor"]),
                      rope_high_freq_factor=float(rope["high_freq_factor"]),
                      rope_original_max_len=int(rope["original_max_position_embeddings"]))
    elif kind != "default":
        raise UnsupportedCheckpoint(f"rope scaling {kind!r} is not supported (only Llama 3's "
                                    f"'llama3' and none)")
    return fields


def llama_model(hf: dict, names=frozenset()) -> dict:
    """The ``model`` fields of a Llama / Qwen2 / Mistral ``config.json``."""
    kind = hf["model_type"]
    if hf.get("hidden_act", "silu") != "silu":
        raise UnsupportedCheckpoint(f"{kind} hidden_act {hf['hidden_act']!r}: only 'silu' (SwiGLU)")
    if hf.get("mlp_bias") or (kind == "llama" and hf.get("attention_bias")):
        raise UnsupportedCheckpoint(f"{kind} with attention_bias / mlp_bias (biases on the output "
                                    f"or MLP projections) is not supported")
    window = hf.get("sliding_window") if kind == "mistral" or hf.get("use_sliding_window") else None
    if window:
        raise UnsupportedCheckpoint(f"{kind} sliding-window attention (window {window}) is not "
                                    f"supported: pretrainx attends over the whole context")
    E, H = hf["hidden_size"], hf["num_attention_heads"]
    return {"arch": "gpt", "vocab_size": hf["vocab_size"], "num_layers": hf["num_hidden_layers"],
            "num_heads": H, "num_kv_heads": hf.get("num_key_value_heads") or H, "embed_dim": E,
            "head_size": hf.get("head_dim") or E // H, "mlp_dim": hf["intermediate_size"],
            "max_len": hf["max_position_embeddings"], "use_bias": False,
            "qkv_bias": kind == "qwen2", "tie_embeddings": bool(hf.get("tie_word_embeddings", False)),
            "rope": True, "norm": "rmsnorm", "norm_eps": hf["rms_norm_eps"],
            "mlp_activation": "silu", "mlp_gated": True, **_rope_fields(hf)}


def llama_config(m) -> dict:
    kind = "qwen2" if m.qkv_bias else "llama"
    rope_scaling = None if m.rope_scaling == "none" else {
        "rope_type": "llama3", "factor": m.rope_scaling_factor,
        "low_freq_factor": m.rope_low_freq_factor, "high_freq_factor": m.rope_high_freq_factor,
        "original_max_position_embeddings": m.rope_original_max_len}
    return {"architectures": ["Qwen2ForCausalLM" if m.qkv_bias else "LlamaForCausalLM"],
            "model_type": kind, "vocab_size": m.vocab_size, "num_hidden_layers": m.num_layers,
            "num_attention_heads": m.num_heads, "num_key_value_heads": m.num_kv_heads or m.num_heads,
            "hidden_size": m.embed_dim, "head_dim": m.head_size or m.embed_dim // m.num_heads,
            "intermediate_size": m.mlp_dim, "max_position_embeddings": m.max_len,
            "rms_norm_eps": m.norm_eps, "rope_theta": m.rope_theta, "rope_scaling": rope_scaling,
            "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
            "tie_word_embeddings": m.tie_embeddings, "torch_dtype": "float32"}


def llama_rules(m) -> list[Rule]:
    E, H, K = m.embed_dim, m.num_heads, m.num_kv_heads or m.num_heads
    D, M = m.head_size or E // H, m.mlp_dim
    rules = [same("model.embed_tokens.weight", "wte/embedding"), same("model.norm.weight", "ln_f/scale")]
    for i in range(m.num_layers):
        hf, ours = f"model.layers.{i}", f"h_{i}"
        rules += [same(f"{hf}.input_layernorm.weight", f"{ours}/ln_1/scale"),
                  same(f"{hf}.post_attention_layernorm.weight", f"{ours}/ln_2/scale"),
                  linear(f"{hf}.self_attn.q_proj.weight", f"{ours}/attn/query/kernel", E, (E, H, D)),
                  linear(f"{hf}.self_attn.k_proj.weight", f"{ours}/attn/key/kernel", E, (E, K, D)),
                  linear(f"{hf}.self_attn.v_proj.weight", f"{ours}/attn/value/kernel", E, (E, K, D)),
                  linear(f"{hf}.self_attn.o_proj.weight", f"{ours}/attn/out/kernel", H * D, (H, D, E)),
                  linear(f"{hf}.mlp.gate_proj.weight", f"{ours}/mlp/fc/kernel", E, (E, M)),
                  linear(f"{hf}.mlp.up_proj.weight", f"{ours}/mlp/gate/kernel", E, (E, M)),
                  linear(f"{hf}.mlp.down_proj.weight", f"{ours}/mlp/proj/kernel", M, (M, E))]
        if m.qkv_bias:
            rules += [same(f"{hf}.self_attn.{p}_proj.bias", f"{ours}/attn/{n}/bias", (h, D))
                      for p, n, h in (("q", "query", H), ("k", "key", K), ("v", "value", K))]
    if not m.tie_embeddings:
        rules.append(linear("lm_head.weight", "lm_head/kernel", E, (E, m.vocab_size)))
    return rules


@dataclasses.dataclass(frozen=True)
class Family:
    model: Callable[..., dict]         # (HF config.json, its tensor names) -> our model fields
    config: Callable[..., dict]        # our model section -> HF config.json
    rules: Callable[..., list[Rule]]   # our model section -> tensor rules
    preset: str = "llama"              # the config/text.py run an import starts from (its objective)
    section: str = ""                  # the objective's config/sections.py section, when it has one

FAMILIES = {"gpt2": Family(gpt2_model, gpt2_config, gpt2_rules),
            "llama": Family(llama_model, llama_config, llama_rules),
            "qwen2": Family(llama_model, llama_config, llama_rules),
            "mistral": Family(llama_model, llama_config, llama_rules),
            "bert": Family(enc.bert_model, enc.bert_config, enc.bert_rules, "bert", "mlm"),
            "t5": Family(enc.t5_model, enc.t5_config, enc.t5_rules, "t5", "span")}


def family_of(hf: dict, where: str) -> Family:
    kind = hf.get("model_type")
    if kind not in FAMILIES:
        raise UnsupportedCheckpoint(f"{where}: model_type {kind!r} is not supported (supported: "
                                    f"{sorted(FAMILIES)})")
    return FAMILIES[kind]


def family_for_export(m) -> Family:
    """The family a pretrainx model exports as: an encoder-decoder is T5; a post-LN bidirectional
    encoder with learned positions is BERT; RoPE + RMSNorm + SwiGLU is Llama (Qwen2 with q/k/v
    biases), learned positions + LayerNorm + tanh-GELU with biases is GPT-2."""
    plain = not (m.num_kv_heads or m.head_size or m.mlp_gated or m.rope)
    if m.num_decoder_layers and m.norm == "rmsnorm" and not m.use_bias and not m.scaled_attention:
        return FAMILIES["t5"]
    if (m.attention_kind == "bidirectional" and m.norm_position == "post" and m.use_bias and plain
            and m.norm == "layernorm" and m.mlp_activation in enc.ACTIVATION_NAMES):
        return FAMILIES["bert"]
    if m.rope and m.norm == "rmsnorm" and m.mlp_gated and m.mlp_activation == "silu" and not m.use_bias:
        return FAMILIES["llama"]
    if (not m.rope and m.norm == "layernorm" and not m.mlp_gated and m.use_bias
            and m.mlp_activation == "gelu_tanh" and not (m.num_kv_heads or m.head_size)):
        return FAMILIES["gpt2"]
    raise UnsupportedCheckpoint("this model is none of T5, BERT, GPT-2 or Llama in shape, so no "
                                "Hugging Face architecture loads it exactly")
