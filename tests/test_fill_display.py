"""What ``pretrainx sample`` prints for the masked and span objectives (#25): fill-mask gives the
completed text and a table of each [MASK]'s top-5 candidates; span filling gives the prompt with
each sentinel replaced by its span; temperature and seed change the fills (not the table); a
prompt with nothing to fill is one line, exit 2 (every text objective's eval sample: test_configs).

The format tests run on randomly initialised tiny models (the mechanics, not the quality); the
command's refusals read the masked and span objectives' smoke runs of a few steps."""
import ast
import re
import os

import jax
import pytest

from pretrainx import main
from pretrainx.config import load as config_lib
from pretrainx.core import train
from pretrainx.data import special_tokens as st
from pretrainx.data import tokenizer as tokenizer_lib
from pretrainx.data.basic_tokenizers import CharTokenizer
from pretrainx.errors import UserError
from pretrainx.objectives import base as objectives
from pretrainx.objectives.masking_mixin import CANDIDATES_SHOWN

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
CHARS = sorted(set(" .,:;!?'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\n"))
CONFIGS = {"mlm": "configs/bert/bert_base.py:smoke", "span_corruption": "configs/t5/t5_small.py:smoke",
           "ul2": "configs/ul2/ul2_small.py:smoke", "prefix_lm": "configs/ul2/prefix_lm_char.py:smoke",
           "clm_mlm": "configs/ul2/clm_mlm_char.py:smoke"}


def smoke(objective: str, **updates):
    return config_lib.override(config_lib.load(os.path.join(ROOT, CONFIGS[objective])),
                               {"data.seq_len": 32, "model.max_len": 32, **updates})


def random_objective(objective: str, seed: int = 0):
    """(objective on a char vocabulary with its special tokens, random parameters)."""
    config = smoke(objective)
    cls = objectives.get(objective)
    tok = tokenizer_lib.with_special_tokens(CharTokenizer(CHARS),
                                            cls.data_request(config).special_tokens)
    obj = cls(config, objectives.DataSpec(tok))
    return obj, obj.init(jax.random.PRNGKey(seed))


def sample(obj, params, **options):
    """``pretrainx sample``'s text for ``options`` over the objective's defaults."""
    values = {o.name: o.default for o in obj.sample_options()}
    ctx = objectives.EvalContext(params=params, frozen={}, step=0, workdir="", rng=None,
                                 mesh=None, val_data=None)
    return obj.sample_command(ctx, {**values, **options})


def parse_fill_mask(text: str):
    """(filled text, [[(candidate, probability), ...] per mask]) from fill-mask's output."""
    filled, table = text.split("\n\n", 1)
    rows = table.splitlines()[2:]                   # a title line and the column names
    masks = []
    for row in rows:      # columns: mask and token (blank after a mask's first row), rank, ...
        if row[:11].strip():
            masks.append([])
        candidate, prob = row[19:].rsplit(" ", 1)
        masks[-1].append((ast.literal_eval(candidate.strip()), float(prob)))
    return filled, masks


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["mlm", "clm_mlm"])
def test_fill_mask_prints_the_filled_text_and_five_ranked_candidates(objective):
    obj, params = random_objective(objective)
    prompt = f"ROMEO: I {st.MASK}ove thee, {st.MASK}ay{st.MASK}"
    out = sample(obj, params, prompt=prompt, temperature=0.0)
    filled, masks = parse_fill_mask(out)
    assert st.MASK not in filled and len(masks) == 3
    for candidates in masks:
        probs = [p for _, p in candidates]
        assert len(candidates) == CANDIDATES_SHOWN
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-4
        assert all(c in CHARS for c, _ in candidates)     # special tokens are never candidates
    # greedy: each mask gets its top candidate, the rest of the prompt is kept
    expected = prompt
    for candidates in masks:
        expected = expected.replace(st.MASK, candidates[0][0], 1)
    assert filled == expected


def test_fill_mask_samples_with_the_seed_and_keeps_the_table():
    obj, params = random_objective("mlm")
    prompt = " ".join([st.MASK] * 8)
    one, two = (sample(obj, params, prompt=prompt, temperature=1.0, seed=s) for s in (1, 2))
    assert one.split("\n\n")[0] != two.split("\n\n")[0]          # the fills are drawn
    assert one.split("\n\n")[1] == two.split("\n\n")[1]          # the table is the model's
    assert one == sample(obj, params, prompt=prompt, temperature=1.0, seed=1)


def spans_of(out: str) -> tuple[str, dict[int, str]]:
    filled, table = out.split("\n\n", 1)
    spans = {}
    for row in table.splitlines()[1:]:
        number, span = row.split(None, 1)
        spans[int(number)] = "" if span == "(none generated)" else ast.literal_eval(span)
    return filled, spans


@pytest.mark.slow      # 15-35 s on 2 cores: out of the -m 'not slow' set's 10 min
@pytest.mark.parametrize("objective", ["span_corruption", "ul2"])
def test_span_filling_prints_the_prompt_with_its_spans_filled(objective):
    obj, params = random_objective(objective)
    prompt = f"ROMEO: I {st.sentinel(0)} thee, {st.sentinel(1)}."
    drawn = [sample(obj, params, prompt=prompt, max_new_tokens=16, temperature=1.0, seed=s)
             for s in (1, 2)]
    filled, spans = spans_of(drawn[0])
    assert "<extra_id_" not in filled and sorted(spans) == [0, 1]
    assert filled == prompt.replace(st.sentinel(0), spans[0]).replace(st.sentinel(1), spans[1])
    assert drawn[0] != drawn[1]                   # the seed draws the spans


def test_ul2_without_a_sentinel_continues_the_prompt_with_the_seed():
    obj, params = random_objective("ul2")
    out = [sample(obj, params, prompt="ROMEO:", max_new_tokens=12, temperature=1.0, seed=s)
           for s in (1, 2)]
    assert all(o.startswith("ROMEO:") and len(o) > len("ROMEO:") for o in out)
    assert out[0] != out[1]


@pytest.mark.parametrize("objective,needs", [("mlm", st.MASK), ("span_corruption", "<extra_id_0>")])
def test_a_prompt_with_nothing_to_fill_names_what_to_put_in_it(objective, needs):
    obj, params = random_objective(objective)
    with pytest.raises(UserError, match=f"has no .*put {re.escape(needs)}"):
        sample(obj, params, prompt="ROMEO: I love thee")
    # the eval samples' prompt is checked before training, not at the first eval
    with pytest.raises(UserError, match=f"config.sample.prompt .* has no {re.escape(needs)}"):
        type(obj).check_config(smoke(objective, **{"sample.prompt": "ROMEO: I love thee"}))


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory):
    """The smoke configs of the objectives that fill blanks, 3 steps. (That every text objective's
    eval writes its sample is checked where test_configs.py runs each smoke config.)"""
    base = tmp_path_factory.mktemp("fill_display")
    for objective in ("mlm", "span_corruption"):
        config = smoke(objective, **{"train.steps": 3, "eval.every": 0, "eval.num_batches": 1,
                                     "checkpoint.every": 3, "batch_size": 8, "eval.batch_size": 8,
                                     "train.progress": False, "mesh.data": 1})
        train.run(config, str(base / objective))
    return base


@pytest.mark.slow
@pytest.mark.parametrize("objective,needs", [("mlm", st.MASK), ("span_corruption", "<extra_id_0>")])
def test_sample_cli_refuses_a_prompt_with_nothing_to_fill_in_one_line(trained_runs, objective,
                                                                     needs, capsys):
    capsys.readouterr()
    code = main.cli(["sample", "--workdir", str(trained_runs / objective), "--prompt", "ROMEO:"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needs in err, err
