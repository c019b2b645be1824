"""The speaker task's baselines and results table (``finetune_speakers.md``).

  python experiments/finetune_speakers.py                      # majority + bag-of-words baselines
  python experiments/finetune_speakers.py RUN_DIR [RUN_DIR ...]  # + each run's held-out accuracy
  python experiments/finetune_speakers.py --no-baselines RUN_DIR ...  # the runs only (the
      bag-of-words grid search takes ~5 min on the shared 2-core CPU)

Runs are also pooled by arm: the trials of a sweep (``experiments/seed_studies.py:speakers``,
``:c1ft_speakers``) by their config (fine-tuned or from scratch), run directories named
``ARM_seedN`` by name; per arm the mean over seeds, the standard deviation and the range
(max - min), the spread a "beats" claim has to clear.

The split is ``pretrainx.data.speeches.speaker_task`` (split seed 0), the one the ``classify``
runs train and validate on. Bag of words: scikit-learn's CountVectorizer (word unigrams and
bigrams, lower-cased) into a multinomial logistic regression (C picked by 5-fold
cross-validation on the training speeches only).
"""
from __future__ import annotations

import os
import sys

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from pretrainx.data import speeches  # noqa: E402
from pretrainx.run import rundir  # noqa: E402

DATA = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data", "tinyshakespeare",
                                     "input.txt"))


def bag_of_words(train, val, prefix_chars: int = 0) -> float:
    cut = (lambda s: s[:prefix_chars]) if prefix_chars else (lambda s: s)
    xs, ys = [cut(s) for s, _ in train], [y for _, y in train]
    pipe = make_pipeline(CountVectorizer(ngram_range=(1, 2), lowercase=True),
                         LogisticRegression(max_iter=2000))
    grid = GridSearchCV(pipe, {"logisticregression__C": [0.1, 0.3, 1.0, 3.0, 10.0]}, cv=5)
    grid.fit(xs, ys)
    return float(np.mean(grid.predict([cut(s) for s, _ in val]) == np.asarray([y for _, y in val])))


def run_accuracy(workdir: str) -> tuple[int, float]:
    steps, accuracies = rundir.curve(rundir.read_rows(workdir), "val/accuracy")
    return steps[-1], accuracies[-1]


def arm_of(workdir: str) -> str | None:
    """A sweep trial's arm from its config; else the ARM of a folder named ARM_seedN."""
    name = os.path.basename(os.path.normpath(workdir))
    config = rundir.read_config(workdir) if "_seed" not in name else None
    if config is not None:
        return "finetuned" if config["init_from"]["workdir"] else "scratch"
    return name.rsplit("_seed", 1)[0] if "_seed" in name else None


def main(argv):
    baselines = "--no-baselines" not in argv
    argv = [a for a in argv if a != "--no-baselines"]
    train, val, names = speeches.speaker_task(open(DATA, encoding="utf-8").read())
    counts = np.bincount([y for _, y in val], minlength=len(names))
    print(f"speakers: {names}")
    print(f"train {len(train)} speeches, balance {np.bincount([y for _, y in train]).tolist()}")
    print(f"val {len(val)} speeches, balance {counts.tolist()}")
    print(f"majority class (train's most frequent) on val: {counts[0] / len(val):.4f}")
    if baselines:
        print(f"bag of words, whole speech: {bag_of_words(train, val):.4f}")
        print(f"bag of words, first 127 characters: {bag_of_words(train, val, 127):.4f}")
    arms = {}
    for w in argv:
        step, acc = run_accuracy(w)
        print(f"{w}: val/accuracy {acc:.4f} at step {step}")
        if arm_of(w) is not None:
            arms.setdefault(arm_of(w), []).append(acc)
    for arm, accs in arms.items():
        a = np.asarray(accs)
        print(f"{arm}: mean {a.mean():.4f} over {len(a)} seeds, std {a.std(ddof=1) if len(a) > 1 else 0:.4f}, "
              f"range {a.max() - a.min():.4f} ({', '.join(f'{x:.4f}' for x in a)})")


if __name__ == "__main__":
    main(sys.argv[1:])
