"""The fields a config lacks, filled from the presets: the one place a missing field gets a value.

The library reads every field directly (``config.mlm.rate``, never ``.get("rate", 0.15)``), so a
default exists only where a preset in this package shows it. ``with_defaults`` gives a config the
preset value of each field it lacks, so that a run's ``config.json`` written before a field
existed, or a config built by hand in a script, reads as if it had the default:

- the runner's sections (``base.runner``) for every run;
- the data section from the preset of its ``data.kind``;
- each objective section the config has (``mlm``, ``ul2``, ``reward``, ``meanflow``, ...) from
  its preset; an image objective's section also brings the image ``eval`` and ``sample`` fields;
- an image model (one with ``image_shape``) from the UNet or DiT preset, a text model from the
  GPT preset (whose architecture fields are ``models/transformer.TransformerConfig``'s defaults).

A field is only ever added, never changed; a section the config does not have is not invented
(an objective with no section of its own reads none).
"""
from __future__ import annotations

import ml_collections

from pretrainx.config import base, images, sections, text

#: data.kind -> its preset (paths and sizes do not matter: a config always names its own)
DATA_KINDS = {
    "text": text.text_data, "jsonl": text.text_data, "text_files": text.text_data,
    "numpy": lambda: text.numpy_data(""), "shards": text.shards_data,
    "speeches": sections.speeches_data, "speeches_text": sections.speeches_text_data,
    "preferences": lambda: sections.preference_data(""),
    "idx": lambda: images.idx_data(""), "digits": images.digits_data,
    "image_archive": lambda: images.image_archive_data(""),
    "tfds_images": lambda: images.tfds_images_data(""),
}

#: section name -> its preset
SECTIONS = {
    "loss": lambda: ml_collections.ConfigDict({"label_smoothing": 0.0}),
    "mlm": sections.mlm, "span": sections.span, "prefix": sections.prefix,
    "mixture": sections.mixture, "ul2": sections.ul2, "dpo": sections.dpo,
    "reward": sections.reward, "classify": sections.classify, "ppo": sections.ppo,
    **{images.section_name(o): (lambda o=o: images.objective_section(o, 0.0)) for o in images.OBJECTIVES},
}


def with_defaults(config) -> ml_collections.ConfigDict:
    """A copy of ``config`` with every field it lacks set to its preset's value (module docstring)."""
    filled = ml_collections.ConfigDict(config.to_dict() if hasattr(config, "to_dict") else config)
    _fill(filled, base.runner(""))           # no objective is filled: a run always names one
    for name in filled.init_from.also:       # each further source reads as an init_from section
        _fill(filled.init_from.also[name], base.init_from())
    for name, preset in SECTIONS.items():
        if name in filled:
            _fill(filled[name], preset())
    if "data" in filled and filled.data.get("kind") in DATA_KINDS:
        _fill(filled.data, DATA_KINDS[filled.data.kind]())
    if "model" in filled and "vocab_size" in filled.model:     # a text model
        _fill(filled.model, text.gpt_model())
    for objective in images.OBJECTIVES:
        if images.section_name(objective) in filled:
            _fill_image_run(filled, objective)
    return filled


def _fill_image_run(config, objective: str) -> None:
    _fill(config.eval, images.image_eval(objective))
    if "sample" in config:
        _fill(config.sample, images.image_sample(objective))
    if "model" in config and "image_shape" in config.model:
        unet = images.unet_model()
        model = images.dit_model(unet) if config.model.get("name") == "dit" else unet
        _fill(config.model, model)


def _fill(node, defaults) -> None:
    for key, value in defaults.items():
        if key not in node:
            node[key] = value
        elif isinstance(value, ml_collections.ConfigDict) and isinstance(node[key], ml_collections.ConfigDict):
            _fill(node[key], value)
