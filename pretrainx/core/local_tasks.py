"""Local lm-evaluation-harness tasks made from the shared data, for machines without downloads:
JSONL files and task YAMLs in the harness's own format (``dataset_path: json``,
``dataset_kwargs.data_files``), written into a folder the harness's ``TaskManager`` includes.
The data files are generated (into a cache folder, never the repository), deterministically:

``pretrainx_wikitext_cloze`` (LAMBADA-style last-word cloze, metric ``acc``: the target is the
model's greedy continuation; ``perplexity`` of the target): WikiText-2 *validation*, every line
that is a paragraph (not a `` = heading = `` nor empty), cut into sentences at `` . ``; the first
sentence of each paragraph with 8 to 40 words, written in letters, spaces and ``, . ; : ' ! ? -``
only (so that a character model of Tiny Shakespeare can read it: no digits, brackets, quotes or
``<unk>``), whose last word has 3 or more letters, becomes one example: context = the sentence's
other words, target = " " + the last word.

``pretrainx_shakespeare_nextline`` (multiple choice among 4 lines, ``acc`` / ``acc_norm``;
chance 0.25): the held-out tail of Tiny Shakespeare (its last 10 % of characters, the
validation split of ``configs/gpt/shakespeare_char.py``), cut into lines. At every third line i
where lines i-1, i, i+1 are all spoken text (not empty, not a ``NAME:`` header), context = lines
i-1 and i, each with its newline; the choices are line i+1 and 3 other spoken lines of the tail,
drawn by ``numpy.random.default_rng(i)``, in an order drawn by the same generator.
"""
from __future__ import annotations

import json
import os
import string

import numpy as np

from pretrainx.config.text import SHAKESPEARE, WIKITEXT

CLOZE, NEXTLINE = "pretrainx_wikitext_cloze", "pretrainx_shakespeare_nextline"
SHAKESPEARE_VAL_FRACTION = 0.1     # shakespeare_char's data.val_fraction
CHOICES = 4

CLOZE_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood
doc_to_text: "{{{{context}}}}"
doc_to_target: "{{{{target}}}}"
target_delimiter: ""
metric_list:
  - metric: perplexity
    aggregation: perplexity
    higher_is_better: false
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""

NEXTLINE_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
target_delimiter: ""
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


CLOZE_CHARACTERS = frozenset(string.ascii_letters + " ,.;:'!?-")


def cloze_examples(text: str) -> list[dict]:
    """The cloze rule of the module docstring over WikiText-2's text."""
    out = []
    for line in text.split("\n"):
        line = line.strip()
        if not line or line.startswith("="):
            continue
        for sentence in line.split(" . "):
            words = sentence.split()
            last = words[-1] if words else ""
            if (8 <= len(words) <= 40 and len(last) >= 3 and last.isalpha()
                    and set(sentence) <= CLOZE_CHARACTERS):
                out.append({"context": " ".join(words[:-1]), "target": " " + last})
                break
    return out


def _spoken(line: str) -> bool:
    return bool(line.strip()) and not line.rstrip().endswith(":")


def nextline_examples(text: str) -> list[dict]:
    """The next-line rule of the module docstring over Tiny Shakespeare's text."""
    lines = text[int(len(text) * (1 - SHAKESPEARE_VAL_FRACTION)):].split("\n")
    spoken = [line for line in lines if _spoken(line)]
    out = []
    for i in range(1, len(lines) - 1, 3):
        if not all(_spoken(line) for line in lines[i - 1:i + 2]):
            continue
        rng = np.random.default_rng(i)
        others = [s for s in spoken if s != lines[i + 1]]
        choices = [lines[i + 1]] + [others[j] for j in rng.choice(len(others), CHOICES - 1,
                                                                   replace=False)]
        order = rng.permutation(CHOICES)
        out.append({"context": lines[i - 1] + "\n" + lines[i] + "\n",
                    "choices": [choices[j] for j in order],
                    "label": int(np.argmax(order == 0))})
    return out


BUILDERS = {CLOZE: (WIKITEXT, cloze_examples, CLOZE_YAML),
            NEXTLINE: (SHAKESPEARE, nextline_examples, NEXTLINE_YAML)}


def build(task_dir: str, names=tuple(BUILDERS)) -> str:
    """Write the JSONL data and the YAML of each local task ``names`` into ``task_dir`` (made if
    missing; files already there are kept, the rules being deterministic); returns task_dir."""
    os.makedirs(task_dir, exist_ok=True)
    for name in names:
        source, make, template = BUILDERS[name]
        data, spec = os.path.join(task_dir, f"{name}.jsonl"), os.path.join(task_dir, f"{name}.yaml")
        if os.path.exists(data) and os.path.exists(spec):
            continue
        if not os.path.exists(source):
            raise FileNotFoundError(f"local task {name} is made from {source}, which is missing")
        with open(source, encoding="utf-8") as f:
            examples = make(f.read())
        with open(data + ".tmp", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(e) + "\n" for e in examples)
        os.replace(data + ".tmp", data)
        with open(spec, "w", encoding="utf-8") as f:
            f.write(template.format(name=name, data=json.dumps(data)))
    return task_dir
