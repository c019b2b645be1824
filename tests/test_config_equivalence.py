"""The redesigned configs resolve to what the pre-redesign recipes did, field by field (issue 20).

``fixtures/resolved_configs_pre_redesign.json`` holds every recipe:variant resolved by commit
c1b918f (tuples as lists; the checkout's parent folder written as ``<CHECKOUT_PARENT>`` by a plain
text replace, which also turned the ``/work`` of ``/workdirs`` into it: see ``_fixture_text``).
Each difference must be one of the two kinds listed here, or the test fails:

- ``RENAMED_VARIANTS``: a variant spelt in the one naming scheme of ``pretrainx/config/variants.py``;
- ``ADDED_DEFAULTS``: a field the base or a family preset now shows that an old recipe left out,
  with the value the library used when it was absent (the ``.get(key, default)`` it read);
- ``UNUSED_DROPPED``: fields an old recipe carried that its data kind never read.

The library now reads every field directly, so a ``config.json`` written by the old code must get
each field it lacks from ``config.defaults.with_defaults``: the last test checks that it does, for
every old recipe, with the value the old library used.
"""
import dataclasses
import json
import os

import pytest

from pretrainx.config import defaults, load as config_lib, text
from pretrainx.models.transformer import TransformerConfig

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
PARENT = os.path.dirname(ROOT)
FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "resolved_configs_pre_redesign.json")
OLD = json.load(open(FIXTURE))

#: old "recipe:variant" -> the same config under the composable flags
RENAMED_VARIANTS = {
    "configs/diffusion/digits_smoke.py:flow_smoke": "configs/diffusion/digits_smoke.py:flow,smoke",
    "configs/diffusion/fashion_mnist_dit.py:flow_cond": "configs/diffusion/fashion_mnist_dit.py:flow,cond",
    "configs/diffusion/fashion_mnist_dit.py:flow_smoke":
        "configs/diffusion/fashion_mnist_dit.py:flow,smoke",
}

#: field -> the library's default when a config lacked it (where the library read it)
ADDED_DEFAULTS = {
    # the GPT preset now shows every TransformerConfig field, at the dataclass's defaults
    # (models/transformer.py: TransformerConfig.from_config filled what a config lacked)
    **{f"model.{f.name}": f.default for f in dataclasses.fields(TransformerConfig)
       if f.default is not dataclasses.MISSING},
    "trackers.wandb": False,               # run/trackers.py (issue 23): no tracker before it existed
    "trackers.mlflow": False,
    # in-training task evaluation (core/evaluate.py, issue 23): no task before it existed
    "eval.tasks": "", "eval.tasks_every": 1000, "eval.tasks_limit": 0, "eval.tasks_batch_size": 16,
    "eval.task_dir": "~/.cache/pretrainx/tasks",
    "train.preemption_check_every": 10,    # core/train.py: preemption.DEFAULT_CHECK_EVERY
    # issue 26: the same steps, several to a dispatch on CPU devices (tests/test_fast_paths.py)
    "train.steps_per_dispatch": 0,
    "optimizer.layer_decay": 1.0,          # core/optim.py: opt.get("layer_decay", 1.0)
    "optimizer.name": "adamw",             # issue 26: Muon is an option; AdamW was the only one
    "optimizer.muon_lr": 0.02,             # issue 26: read only when name is "muon"
    "optimizer.muon_momentum": 0.95,
    "data.decode_errors": "replace",       # data/text.py: TextOptions.decode_errors
    # the token cache (issue 22) serves the uncached pipeline's batches (tests/test_text_cache.py)
    "data.cache_min_mb": 64.0,
    "data.cache_dir": "",
    "data.dev_fraction": 0.0,              # data/preferences.py: config.get("dev_fraction", 0.0)
    "data.eval_split": "test",             # data/preferences.py: config.get("eval_split", "test")
    "data.min_margin": 0.0,                # data/preferences.py: config.get("min_margin", 0.0)
    "init_from.also": {},                  # core/init_from.py: (config.get("init_from") or {}).get("also") or {}
    "init_from.agree": [],                 # core/init_from.py (issue 24): nothing was compared
    # PPO's reward run must score as PPO pools (issue 24: a new check, off before it)
    "init_from.also.reward.agree": [["reward.pool", "ppo.reward_pool"]],
    "data.text_key": "text",               # data/text.py: TextOptions.text_key
    "data.max_docs": 0,                    # data/text.py: TextOptions.max_docs
    "data.couplings": "",                  # data/images.py: if data_config.get("couplings")
    "data.image_key": "image",             # data/images.py: cfg.get("image_key", "image")
    "data.label_key": "label",             # data/images.py: cfg.get("label_key", "label")
    "meanflow.time_scale": 1.0,            # objectives/meanflow.py: m.get("time_scale", 1.0)
    "reward.pool": "last",                 # objectives/reward.py: opts.get("pool", "last")
    "model.name": "unet",                  # objectives/image_common.py: model_config.get("name", "unet")
    "eval.fid_reference_split": "train",   # objectives/image_common.py: e.get("fid_reference_split", "train")
    # core/lora.py (issue 21): rank 0 is no adapters, every parameter trains, as before it
    "lora.rank": 0, "lora.alpha": 16.0, "lora.targets": ["attn/(query|key|value|out)/kernel"],
    "lora.train": ["(^|/)(value_)?head/"],
}

#: fields of a check added since (issue 24): a recipe turns it on, an old run's config.json reads
#: it off (empty), as the old library, which compared nothing
NEW_CHECKS = {"init_from.also.reward.agree"}

#: added fields whose default is a new behaviour on purpose (the old library had neither): #26's
#: CPU levers, one device per core for the default mesh and the persistent compilation cache;
#: the numbers they touch stay within tolerance (tests/test_cpu_levers.py, test_host_devices.py)
ADDED_DEFAULTS.update({"mesh.host_devices": 0, "train.compile_cache": "~/.cache/pretrainx/xla"})
NEW_BEHAVIOUR = {"mesh.host_devices", "train.compile_cache"}

#: old recipe -> fields it carried that nothing read (the :jpeg variant reads JPEGs, not TFDS)
UNUSED_DROPPED = {
    "configs/diffusion/cifar10_ddpm.py:jpeg": {
        "data.tfds_name", "data.tfds_data_dir", "data.train_split", "data.heldout_split",
        "data.image_key", "data.label_key"},
}

#: field -> the values a later issue chose on purpose (a default changed, not a recipe's mistake)
CHANGED_ON_PURPOSE = {
    # #25: the FID classifier's default trains in < 3 min on 2 cores; "classifier" is the old one
    "eval.fid_extractor": {"classifier_fast"},
    "eval.fid_classifier_steps": {400},
}

#: recipe:variant -> fields a later issue changed on purpose in that one recipe
RECIPE_CHANGED_ON_PURPOSE = {
    # #22/#25: the GPT-2 smoke ran 20 steps of a 2,000-step warm-up (it never left it) with a
    # 50304-row table for 256 byte ids; it now leaves a warm-up of 20 and learns in 200 steps
    "configs/gpt/gpt2_124m.py:smoke": {
        "model.vocab_size": 256, "train.steps": 200, "optimizer.decay_steps": 200,
        "optimizer.warmup_steps": 20, "optimizer.lr": 3e-3, "optimizer.end_lr": 3e-4,
        "eval.every": 100, "checkpoint.every": 100, "eval.num_batches": 8},
}

#: the fields where nanoGPT's shakespeare_char (the GPT preset) is not the dataclass's GPT-2
SHAKESPEARE_SIZES = {"max_len", "dropout", "attention_dropout", "use_bias"}


def flatten(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _fixture_text(value):
    """The fixture's placeholders back to this checkout's paths."""
    if not isinstance(value, str):
        return value
    return (value.replace("<CHECKOUT_PARENT>/main<CHECKOUT_PARENT>dirs", os.path.join(ROOT, "workdirs"))
            .replace("<CHECKOUT_PARENT>/main", ROOT).replace("<CHECKOUT_PARENT>", PARENT))


def _same(old, new):
    # bool is an int to Python: a True where 1 was (or 1.0 where 1 was) is a changed field
    return old == new and type(old) is type(new)


@pytest.mark.parametrize("old_spec", sorted(OLD))
def test_recipe_resolves_to_its_pre_redesign_config(old_spec):
    spec = RENAMED_VARIANTS.get(old_spec, old_spec)
    old = {k: _fixture_text(v) for k, v in flatten(OLD[old_spec]).items()}
    new = flatten(json.loads(config_lib.load(os.path.join(ROOT, spec)).to_json()))
    problems = [f"{k}: {old[k]!r} -> {new[k]!r}" for k in sorted(old.keys() & new.keys())
                if not _same(old[k], new[k]) and new[k] not in CHANGED_ON_PURPOSE.get(k, ())
                and not _same(RECIPE_CHANGED_ON_PURPOSE.get(old_spec, {}).get(k), new[k])]
    problems += [f"{k}: dropped (was {old[k]!r})" for k in sorted(old.keys() - new.keys())
                 if k not in UNUSED_DROPPED.get(old_spec, ())]
    problems += [f"{k}: added as {new[k]!r}" for k in sorted(new.keys() - old.keys())
                 if k not in ADDED_DEFAULTS or not _same(ADDED_DEFAULTS[k], new[k])]
    assert not problems, f"{spec}:\n  " + "\n  ".join(problems)


#: recipes written after the redesign: no pre-redesign config to compare them with
NEW_RECIPES = {"configs/llama/llama3_2_1b.py", "configs/llama/qwen2_5_0_5b.py",   # issue 21
               "configs/gpt/shakespeare_wiki_shards.py",                              # issue 22
               "configs/llama/dpo_lora.py"}                                          # issue 21


def test_every_fixture_recipe_and_no_other_variant_is_compared():
    """A new recipe file is not silently left out of the comparison above (or is named in
    NEW_RECIPES)."""
    files = {spec.partition(":")[0] for spec in OLD}
    on_disk = {os.path.relpath(os.path.join(d, f), ROOT)
               for d, _, names in os.walk(os.path.join(ROOT, "configs")) for f in names
               if f.endswith(".py")}
    assert on_disk - NEW_RECIPES == files and NEW_RECIPES <= on_disk


@pytest.mark.parametrize("old_spec", sorted(OLD))
def test_old_config_json_gets_every_field_the_library_reads(old_spec):
    """An old run's saved config, filled by ``with_defaults``, has every field its recipe shows
    today, each lacking one with the value the old library read when it was absent."""
    spec = RENAMED_VARIANTS.get(old_spec, old_spec)
    new = flatten(json.loads(config_lib.load(os.path.join(ROOT, spec)).to_json()))
    filled = flatten(json.loads(defaults.with_defaults(OLD[old_spec]).to_json()))
    missing = sorted(new.keys() - filled.keys())
    assert not missing, f"{spec}: with_defaults leaves out {missing}"
    added = flatten(OLD[old_spec]).keys() ^ filled.keys()
    wrong = {k: filled[k] for k in added if k in ADDED_DEFAULTS
             and k not in NEW_CHECKS | NEW_BEHAVIOUR
             and not _same(ADDED_DEFAULTS[k], filled[k])}
    assert not wrong, f"{spec}: filled with values the old library did not use: {wrong}"


def test_the_gpt_preset_shows_every_transformer_field_at_its_default():
    """The text models' defaults live in one preset: every TransformerConfig field is in
    ``text.gpt_model()``, and each architecture field (those GPT-2 shares with the dataclass)
    at the dataclass's value, so a config filled from the preset builds the same network."""
    model = text.gpt_model()
    fields = {f.name: f.default for f in dataclasses.fields(TransformerConfig)}
    assert set(fields) <= set(model.keys())
    differs = {k: (model[k], d) for k, d in fields.items()
               if d is not dataclasses.MISSING and k not in SHAKESPEARE_SIZES and model[k] != d}
    assert not differs, differs
