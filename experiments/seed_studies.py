"""The seed x arm studies of experiments/text_objectives.md as sweep grids: each is one
``pretrainx sweep``, one trial at a time; rerunning the same command resumes the study and skips
its finished trials (the sweep's journal records them), which the bash loops of earlier releases
did by grepping metrics.jsonl. ``experiments/seed_claims.py`` prints the tables from the trials.

Issue 14's two claims of the seeds, 3 seeds per arm, CPU-sized models ("Two claims of the seeds"):

  pretrainx sweep --config experiments/seed_studies.py:c1 --workdir workdirs/seed_claims/c1
  pretrainx sweep --config experiments/seed_studies.py:c2 --workdir workdirs/seed_claims/c2
  pretrainx sweep --config experiments/seed_studies.py:c2mlm --workdir workdirs/seed_claims/c2mlm
  pretrainx sweep --config experiments/seed_studies.py:c1ft --workdir workdirs/seed_claims/c1ft
  pretrainx sweep --config experiments/seed_studies.py:c1ft_speakers \
      --workdir workdirs/seed_claims/c1ft_speakers      # after c1ft: fine-tunes its parents
  python experiments/seed_claims.py 1 workdirs/seed_claims/c1      # (2, 2mlm, 1 for c1ft) tables

  c1      the :smoke BERT (2 layers, 64 wide, chars, 300 steps of 32 x 64): constant 15 % masking
          against a linear 30 % -> 15 % schedule; validation always masks 15 % (mlm.eval_rate)
  c1ft    the same two arms pretrained on the play without the held-out speeches, length 128
  c1ft_speakers  configs/finetune/speakers_bert.py (400 steps, mean pooling) from each c1ft
          parent, the fine-tune seed = the parent's seed (``:c1ft_speakers@DIR``: parents in DIR)
  c2      the :smoke character GPT with prefix attention (2 layers, 128 wide), 400 steps of
          32 x 64: mlm_weight 0 / 0.5 / 1, every validation row scored causally
  c2mlm   c2's runs again (the same training), every validation row masked: val/mlm_loss

The speaker task with 3 seeds per arm (text_objectives.md, "fine-tuning"): one parent pretrained
on the play without the held-out speeches, then the fine-tuned and the from-scratch classifier:

  pretrainx sweep --config experiments/seed_studies.py:speakers_parent \
      --workdir workdirs/speakers_parent
  pretrainx sweep --config experiments/seed_studies.py:speakers --workdir workdirs/speakers \
      [--config.classify.pooling=mean]      # ``:speakers@DIR``: the parent run in DIR
  python experiments/finetune_speakers.py workdirs/speakers/trials/*
"""
import os

from pretrainx.config import load as config_lib
from pretrainx.tools import sweep_def as sd

_CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")
SEEDS = (0, 1, 2)
BERT_SMOKE = "bert/bert_base.py:smoke"
SPEAKERS = "finetune/speakers_bert.py"
# A BERT that reads the play without the held-out speeches, 128 characters at a time.
SPEAKERS_PARENT = "finetune/speakers_bert.py:parent"
MASKING_ARMS = [{"mlm.rate_schedule": "constant", "mlm.rate_start": 0.15},   # "constant"
                {"mlm.rate_schedule": "linear", "mlm.rate_start": 0.30}]     # "linear30"
# study -> (recipe, overrides of every trial, eval every, the sweep's metric and mode)
STUDIES = {
    "c1": (BERT_SMOKE, {"checkpoint.every": 300}, 25, "val/loss", "min"),
    "c1ft": (SPEAKERS_PARENT, {"train.steps": 300, "optimizer.decay_steps": 300,
                               "checkpoint.every": 300}, 25, "val/loss", "min"),
    "c1ft_speakers": (SPEAKERS, {"classify.pooling": "mean"}, 100, "val/accuracy", "max"),
    "c2": ("ul2/clm_mlm_char.py:smoke", {"checkpoint.every": 400,
                                         "mixture.eval_mlm_weight": 0.0}, 50, "val/clm_loss", "min"),
    "c2mlm": ("ul2/clm_mlm_char.py:smoke", {"checkpoint.every": 400,
                                            "mixture.eval_mlm_weight": 1.0}, 50, "val/mlm_loss", "min"),
    "speakers_parent": (SPEAKERS_PARENT, {}, 500, "val/loss", "min"),
    "speakers": (SPEAKERS, {}, 100, "val/accuracy", "max"),
}
DEFAULT_PARENTS = {"c1ft_speakers": "workdirs/seed_claims/c1ft",
                   "speakers": "workdirs/speakers_parent/trials/000"}


def _study(arg: str) -> tuple[str, str]:
    """``"c1ft_speakers@DIR"`` -> ("c1ft_speakers", "DIR"); the parents' default otherwise."""
    name, _, parents = arg.partition("@")
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r} (known: {', '.join(STUDIES)})")
    return name, parents or DEFAULT_PARENTS.get(name, "")


def get_config(arg: str = "c1"):
    name, _ = _study(arg)
    recipe, overrides, every, _, _ = STUDIES[name]
    config = config_lib.load(os.path.join(_CONFIGS, recipe))
    return config_lib.override(config, {**overrides, "eval.every": every,
                                        "train.progress": False})


def _parent(parents: str, **point) -> dict:
    """A fine-tune's start: the parent run's weights and its tokenizer."""
    return {"init_from.workdir": parents, "data.tokenizer": parents, **point}


def _points(name: str, parents: str) -> list[dict]:
    seeds = sd.values("seed", SEEDS)
    if name in ("c1", "c1ft"):
        return sd.product(seeds, MASKING_ARMS)
    if name in ("c2", "c2mlm"):
        return sd.product(seeds, sd.values("mixture.mlm_weight", [0.0, 0.5, 1.0]))
    if name == "c1ft_speakers":   # c1ft's trial of (seed, arm) is number 2 * seed + arm
        return [_parent(os.path.join(parents, "trials", f"{2 * s + arm:03d}"), seed=s)
                for s in SEEDS for arm in range(len(MASKING_ARMS))]
    if name == "speakers":        # the fine-tuned arm, then from scratch (the parent's tokenizer)
        return [point for s in SEEDS
                for point in (_parent(parents, seed=s),
                              {"init_from.workdir": "", "data.tokenizer": parents, "seed": s})]
    return sd.values("seed", [0])   # speakers_parent: one run


def get_sweep(arg: str = "c1"):
    name, parents = _study(arg)
    _, _, _, metric, mode = STUDIES[name]
    return sd.grid(_points(name, parents), metric=metric, mode=mode, value="final")
