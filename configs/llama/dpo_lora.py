"""DPO through LoRA adapters on an imported Llama: the base weights frozen (no optimiser state
for them), rank-16 adapters on attention and the MLP trained, the imported model also the frozen
reference policy. Anthropic's HH-RLHF pairs (the harmless-base test file in ../shared/data).

  pretrainx import-hf ~/models/Llama-3.2-1B --workdir workdirs/llama1b_hf
  pretrainx train --config configs/llama/dpo_lora.py --workdir workdirs/llama1b_dpo \\
      --config.init_from.workdir=workdirs/llama1b_hf --config.data.tokenizer=workdirs/llama1b_hf
  pretrainx export-hf --workdir workdirs/llama1b_dpo --out ~/models/llama1b_dpo  # adapters merged
(``--config.lora.rank=0`` fine-tunes every weight instead.)

``:smoke`` is a 2-layer, 64-wide Llama (GQA 4/2, SwiGLU 96, 512 token rows, untied: the shape
of tests/hf_checkpoints.py's random Llama, with room for a byte-level BPE) on the 300 committed VADER pairs of
configs/rlhf/shakespeare_dpo.py, rank 8. Standalone it trains from scratch on a char vocabulary
(the reference is then the initial random model, as in shakespeare_dpo:smoke); chained on an
imported checkpoint of that shape it is the 3-command flow above:
  pretrainx import-hf DIR --workdir W/imported
  pretrainx train --config configs/llama/dpo_lora.py:smoke --workdir W/dpo \\
      --config.init_from.workdir=W/imported --config.data.tokenizer=W/imported
  pretrainx export-hf --workdir W/dpo --out W/exported
(tests/test_lora.py runs it on a checkpoint made by transformers). Without torch or a
download, ``:parent`` makes such a checkpoint with pretrainx itself (a minute on 2 CPU cores):
  pretrainx train --config configs/llama/dpo_lora.py:parent --workdir W/parent
  pretrainx export-hf --workdir W/parent --out W/hf        # then the 3 commands above on W/hf
"""
from pretrainx.config import base, sections, text, variants

ATTENTION_AND_MLP = ("attn/(query|key|value|out)/kernel", "mlp/(fc|gate|proj)/kernel")
TINY_LLAMA = {"model.vocab_size": 512, "model.num_layers": 2, "model.num_heads": 4,
              "model.num_kv_heads": 2, "model.embed_dim": 64, "model.head_size": 16,
              "model.mlp_dim": 96, "model.max_len": 128, "model.tie_embeddings": False,
              "model.norm_eps": 1e-6, "model.rope_theta": 10000.0, "model.rope_scaling": "none",
              "model.dtype": "float32"}


def parent():
    """A tiny Llama of the smoke's shape, a few steps of continued pretraining on Tiny
    Shakespeare with a byte-level BPE (a Hugging Face tokenizer.json, so export-hf can write it):
    the torch-free parent to export, import and chain the smoke on."""
    c = text.llama(objective="clm")
    c = base.change(c, {**TINY_LLAMA, "data.tokenizer": "bpe:512", "data.seq_len": 64,
                        "optimizer.lr": 3e-3, "optimizer.end_lr": 3e-4,
                        "optimizer.warmup_steps": 10, "train.log_every": 10,
                        "eval.num_batches": 4, "sample.max_new_tokens": 32})
    return base.length(c, 60, every=60)


def get_config(arg: str = ""):
    flags = variants.parse(arg, __file__, "smoke", "parent")
    if "parent" in flags:
        return parent()
    c = text.llama(objective="dpo")
    c.data = sections.preference_data(text.shared_data("hh-rlhf", "harmless-base-test.jsonl.gz"),
                                      format="auto", seq_len=512)
    c.dpo = sections.dpo()
    # the imported run is the policy's base and the reference (with LoRA both land in frozen)
    c.init_from.mapping = (("params", "params"), ("params", "frozen/reference"))
    c = base.change(c, {"lora.rank": 16, "lora.alpha": 32.0, "lora.targets": ATTENTION_AND_MLP,
                        "batch_size": 16, "eval.batch_size": 32, "eval.num_batches": 15,
                        "optimizer.lr": 2e-4, "optimizer.end_lr": 2e-5, "optimizer.warmup_steps": 20,
                        "optimizer.weight_decay": 0.0, "checkpoint.best_metric": "",
                        "sample.prompt": "\n\nHuman: How do I make tea?\n\nAssistant:",
                        "sample.max_new_tokens": 64})
    c = base.length(c, 300, every=100)
    if "smoke" in flags:
        c.data = sections.preference_data(text.checkout_path(
            "experiments", "data", "shakespeare_vader_pairs.jsonl"), seq_len=64)
        c = base.change(c, {**TINY_LLAMA, "lora.rank": 8, "lora.alpha": 16.0, "batch_size": 32,
                            "eval.batch_size": 64, "eval.num_batches": 1, "optimizer.lr": 3e-3,
                            "optimizer.end_lr": 3e-3, "optimizer.schedule": "constant",
                            "optimizer.warmup_steps": 5, "train.log_every": 10,
                            "sample.prompt": "ROMEO:\nI ", "sample.max_new_tokens": 32})
        c = base.length(c, 60, every=30)
    return c
