"""nanoGPT's `train_shakespeare_char` recipe: a 10.7M-parameter char-level GPT on Tiny Shakespeare.

  pretrainx train --config configs/gpt/shakespeare_char.py --workdir workdirs/shakespeare_char
  pretrainx train --config configs/gpt/shakespeare_char.py:smoke --workdir /tmp/sc_smoke
  pretrainx train --config configs/gpt/shakespeare_char.py:cpu --workdir /tmp/sc_cpu  # nanoGPT's CPU baby GPT
  pretrainx train --config configs/gpt/shakespeare_char.py:cpu,speedrun --workdir /tmp/sc_fast  # Muon + modern GPT
  pretrainx sample --workdir workdirs/shakespeare_char --prompt "ROMEO:" --max-new-tokens 200
  pretrainx sweep --config configs/gpt/shakespeare_char.py:smoke --workdir /tmp/sc_sweep --parallel 2
  pretrainx sweep --config configs/gpt/shakespeare_char.py --workdir workdirs/sc_tpe  # GPU

Same numbers as nanoGPT's config/train_shakespeare_char.py: 6 layers, 6 heads, width 384, block
256, batch 64, dropout 0.2, AdamW lr 1e-3 -> 1e-4 cosine over 5000 steps with 100 warm-up steps,
beta2 0.99, weight decay 0.1, clip 1.0; the first 90 % of the characters train, the rest validate.
`speedrun` (alone or with `cpu`): the time-to-quality recipe of modded-nanogpt (Jordan et al.):
Muon on the blocks' matrices, RoPE, QK-norm, ReLU², zero-initialised projections, an untied
head, and half the steps (experiments/speedrun.md).

Point `data.path` at your copy of input.txt, or set `data.tfds_name=tiny_shakespeare` with a
`data.data_dir` that holds it.
"""
from pretrainx.config import base, text, variants
from pretrainx.config.check import ConfigError


VARIANTS = ("smoke", "cpu", "speedrun", "cpu,speedrun")


def get_config(arg: str = ""):
    flags = variants.parse(arg, __file__, *VARIANTS)
    c = text.gpt(flags - {"speedrun"})
    if "speedrun" in flags:
        c = speedrun(c)
    return c


def speedrun(c):
    """Muon + the modern GPT options on the same model size and data, over half the steps."""
    c = base.change(c, {"optimizer.name": "muon", "optimizer.muon_lr": 0.02,
                        "model.rope": True, "model.qk_norm": True, "model.mlp_activation": "relu2",
                        "model.zero_init_proj": True, "model.tie_embeddings": False})
    return base.length(c, c.train.steps // 2)


def get_sweep(arg: str = ""):
    """``pretrainx sweep`` definitions (same args as get_config)."""
    from pretrainx.tools import sweep_def as sd   # here: training this config needs no optuna
    flags = variants.parse(arg, __file__, *VARIANTS)
    if flags == {"smoke"}:   # 4 trials, 7.6 min on 2 busy CPU cores with --parallel 2 (2026-11-30)
        return sd.grid(sd.product(sd.values("optimizer.lr", [1e-3, 3e-3]),
                                  sd.values("model.embed_dim", [64, 128])))
    if not flags:        # the full recipe's learning rate and dropout, TPE, 16 trials on a GPU
        return sd.search({"optimizer.lr": sd.loguniform(3e-4, 3e-3),
                          "model.dropout": sd.uniform(0.0, 0.3)},
                         sampler="tpe", trials=16, sampler_options={"n_startup_trials": 4},
                         # the recipe's own values first, so TPE starts from a known-good point
                         enqueue=[{"optimizer.lr": 1e-3, "model.dropout": 0.2}],
                         pruner="median", pruner_options={"n_startup_trials": 3,
                                                          "n_warmup_steps": 1000})
    raise ConfigError(f"no sweep for variant {arg!r} of shakespeare_char (known: '', smoke)")
