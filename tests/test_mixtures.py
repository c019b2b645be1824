"""Mixtures of shards folders (``data.sources``): each row's source is drawn with its weight as a
pure function of (seed, row), the shares fall in the binomial interval, processes split rows,
each source's validation split is addressable, bad sources are one-line errors naming them, and a
mixture changed on resume is logged and recorded in provenance."""
import json
import logging
import os

import numpy as np
import pytest
from scipy import stats

from conftest import SHARED_DATA, data_config
from pretrainx import data
from pretrainx.config import load as config_lib
from pretrainx.config import text as text_presets
from pretrainx.data import mixtures, shards, subword
from pretrainx.errors import UserError
from test_shards import make_shards

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPORA = {"plays": os.path.join(SHARED_DATA, "tinyshakespeare", "input.txt"),
           "wiki": os.path.join(SHARED_DATA, "wikitext-2", "valid.txt")}


def byte_shards(tmp, name, chars=60_000, tokenizer="byte"):
    (tmp / name).mkdir()
    corpus = tmp / name / "corpus.txt"
    text = open(CORPORA[name], encoding="utf-8").read()[:chars]
    # WikiText's blank lines hold a space: without it they cut documents, as the plays' do
    corpus.write_text(text.replace(" \n", "\n"), encoding="utf-8")
    return make_shards(tmp / name, tokenizer, str(corpus), shard_mb="0.02")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mixture")
    return {name: byte_shards(tmp, name) for name in CORPORA}


def spec(folders, **weights):
    return ",".join(f"{name}:{folders[name]}:{w}" for name, w in weights.items())


def build(sources, seed=3, batch_size=8, **fields):
    config = data_config(kind="shards", sources=sources, seq_len=64, **fields)
    return data.build(config, batch_size=batch_size, eval_batch_size=4, seq_len=64, seed=seed)


def split_tokens(folder):
    manifest = json.loads((folder / "manifest.json").read_text())
    tokens = np.concatenate([np.load(folder / f"{s['name']}.tokens.npy") for s in manifest["shards"]])
    cut = manifest["split"]["train_tokens"]
    return tokens[:cut], tokens[cut:]


def test_sources_are_parsed_with_names_paths_and_weights():
    parsed = mixtures.parse_sources("web:/d/a:0.7, books:C:/x/b:3")
    assert [(s.name, s.path, s.weight) for s in parsed] == [("web", "/d/a", 0.7),
                                                            ("books", "C:/x/b", 3.0)]


def test_relative_folders_become_absolute_and_the_rest_is_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = mixtures.absolute_sources("web:shards/web:0.7,books:/data/books:3,home:~/b:1e-1")
    assert spec == (f"web:{tmp_path}/shards/web:0.7,books:/data/books:3.0,"
                    f"home:{os.path.expanduser('~')}/b:0.1")
    assert mixtures.absolute_sources(spec) == spec and mixtures.absolute_sources("") == ""


def test_shares_of_10000_rows_fall_in_the_99_percent_binomial_interval(folders):
    weights = {"plays": 0.7, "wiki": 0.3}
    train = build(spec(folders, **weights), batch_size=100).train
    which = np.concatenate([train.rows(i)[0] for i in range(100)])
    assert len(which) == 10_000
    for k, name in enumerate(train.names):
        low, high = stats.binom.interval(0.99, len(which), weights[name])
        assert low <= np.sum(which == k) <= high, (name, np.sum(which == k), low, high)
    # unequal weights that do not sum to one are normalised
    skewed = build(spec(folders, plays=1, wiki=9), batch_size=100).train
    which = np.concatenate([skewed.rows(i)[0] for i in range(100)])
    low, high = stats.binom.interval(0.99, len(which), 0.1)
    assert low <= np.sum(which == 0) <= high


def test_each_row_is_a_window_of_the_source_it_drew(folders):
    train = build(spec(folders, plays=0.5, wiki=0.5)).train
    tokens = [split_tokens(folders[name])[0] for name in train.names]
    for index in range(20):
        which, starts = train.rows(index)
        batch = train.get_batch(index)
        for row, (k, start) in enumerate(zip(which, starts)):
            np.testing.assert_array_equal(batch["inputs"][row], tokens[k][start:start + 64])
            np.testing.assert_array_equal(batch["targets"][row], tokens[k][start + 1:start + 65])
    assert set(np.concatenate([train.rows(i)[0] for i in range(20)])) == {0, 1}


def test_rows_are_a_function_of_seed_and_index_and_processes_split_them(folders):
    sources = spec(folders, plays=0.6, wiki=0.4)
    first, again = build(sources).train, build(sources).train
    for index in (0, 7, 100_000):
        whole = first.get_batch(index)["inputs"]
        np.testing.assert_array_equal(whole, again.get_batch(index)["inputs"])
        halves = [again.get_batch(index, shard=(p, 2))["inputs"] for p in range(2)]
        np.testing.assert_array_equal(np.concatenate(halves), whole)
    other_seed = build(sources, seed=4).train
    assert not np.array_equal(other_seed.get_batch(0)["inputs"], first.get_batch(0)["inputs"])


def test_each_sources_validation_split_is_addressable(folders):
    dataset = build(spec(folders, plays=0.5, wiki=0.5))
    assert set(dataset.val.parts) == {"plays", "wiki"}
    for name, part in dataset.val.parts.items():
        held_out = split_tokens(folders[name])[1]
        starts = part.starts(0)
        np.testing.assert_array_equal(part.get_batch(0)["inputs"],
                                      held_out[starts[:, None] + np.arange(64)])
        assert dataset.info["sources"][name]["val_tokens"] == len(held_out)
    assert dataset.val.get_batch(0)["inputs"].shape == (4, 64)
    raw = data.build(data_config(kind="shards", sources=spec(folders, plays=1, wiki=1), seq_len=64),
                     batch_size=8, eval_batch_size=4, seq_len=64, seed=3, fields=(data.TOKENS,))
    assert raw.train.get_batch(0)[data.TOKENS].shape == (8, 64)


def test_a_mixture_packs_its_rows_where_documents_begin(folders):
    sources = spec(folders, plays=0.5, wiki=0.5)
    plain, packed = build(sources), build(sources, packing="concat")
    for index in range(5):
        batch = packed.train.get_batch(index)
        np.testing.assert_array_equal(batch["inputs"], plain.train.get_batch(index)["inputs"])
        assert batch["segment_ids"].shape == (8, 64) and batch["weights"].dtype == np.float32
    assert (np.concatenate([packed.train.get_batch(i)["segment_ids"] for i in range(5)]) > 1).any()
    for name, part in packed.val.parts.items():
        np.testing.assert_array_equal(part.get_batch(0)["inputs"],
                                      plain.val.parts[name].get_batch(0)["inputs"])
        assert "segment_ids" in part.get_batch(0)


def one_line_error(sources, error=UserError):
    with pytest.raises(error) as e:
        build(sources)
    assert "\n" not in str(e.value)
    return str(e.value)


@pytest.mark.parametrize("weight", ["0", "-0.5", "nan", "inf", "heavy", ""])
def test_a_weight_that_is_not_positive_is_one_line_naming_the_source(folders, weight):
    message = one_line_error(f"plays:{folders['plays']}:1,wiki:{folders['wiki']}:{weight}",
                             mixtures.MixtureError)
    assert "'wiki'" in message and "data.sources" in message


def test_a_missing_folder_is_one_line_naming_it_and_its_source(folders, tmp_path):
    missing = tmp_path / "nowhere"
    message = one_line_error(f"plays:{folders['plays']}:1,gone:{missing}:1", shards.ShardsError)
    assert str(missing) in message and "'gone'" in message


def test_a_folder_with_another_tokenizer_is_one_line_naming_it(folders, tmp_path):
    text = open(CORPORA["wiki"], encoding="utf-8").read()[:20_000]
    subword.train_from_texts([text], "bpe", 500).save(str(tmp_path / "tok"))
    other = byte_shards(tmp_path, "wiki", chars=20_000, tokenizer=str(tmp_path / "tok"))
    message = one_line_error(f"plays:{folders['plays']}:1,bpe:{other}:1", shards.ShardsError)
    assert str(other) in message and "another tokenizer" in message


def test_malformed_sources_are_one_line_errors(folders):
    assert "name:path:weight" in one_line_error("plays-no-weight", mixtures.MixtureError)
    assert "twice" in one_line_error(spec(folders, plays=1) + "," + spec(folders, plays=2))
    assert "letters" in one_line_error(f"a b:{folders['plays']}:1")
    both = data_config(kind="shards", path=str(folders["plays"]), sources=spec(folders, wiki=1),
                       seq_len=64)
    with pytest.raises(shards.ShardsError, match="both set"):
        data.build(both, batch_size=8, eval_batch_size=4, seq_len=64, seed=3)


def test_a_bad_source_on_the_command_line_is_one_line_and_exit_2(folders, tmp_path, capsys):
    from pretrainx import main
    recipe = os.path.join(ROOT, "configs/gpt/shakespeare_wiki_shards.py:smoke")
    for sources, named in ((f"plays:{folders['plays']}:0", "'plays'"),
                           (f"plays:{folders['plays']}:1,gone:{tmp_path / 'gone'}:1", "gone")):
        capsys.readouterr()
        code = main.cli(["train", "--config", recipe, "--workdir", str(tmp_path / "run"),
                         f"--config.data.sources={sources}"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and named in err, err


def tiny_gpt_on(folders, steps, **weights):
    cfg = config_lib.load(os.path.join(ROOT, "configs/gpt/shakespeare_char.py:smoke"))
    cfg = config_lib.override(cfg, {
        "model.vocab_size": 256, "model.num_layers": 1, "model.num_heads": 2,
        "model.embed_dim": 32, "model.max_len": 32, "batch_size": 16, "eval.batch_size": 16,
        "eval.num_batches": 2, "train.steps": steps, "train.log_every": 1, "train.progress": False,
        "eval.every": 2, "checkpoint.every": 2, "optimizer.warmup_steps": 1,
        "optimizer.decay_steps": steps})
    with cfg.unlocked():
        cfg.data = text_presets.shards_data(seq_len=32)
        cfg.data.sources = spec(folders, **weights)
    return cfg


@pytest.fixture(scope="module")
def bpe_folders(tmp_path_factory):
    """The two corpora under one BPE vocabulary fitted to the plays: the plays' tokens hold
    more bytes each than WikiText's."""
    tmp = tmp_path_factory.mktemp("bpe_mixture")
    text = open(CORPORA["plays"], encoding="utf-8").read()[:60_000]
    subword.train_from_texts([text], "bpe", 600).save(str(tmp / "tok"))
    return {name: byte_shards(tmp, name, tokenizer=str(tmp / "tok")) for name in CORPORA}


def test_each_source_has_its_bits_per_byte_pooled_over_its_own_bytes(bpe_folders):
    """A causal LM whose every parameter is 0 costs log2(V) bits a token: a source's
    ``val/<name>/bpb`` is that times its held-out tokens over the UTF-8 bytes they decode to
    (the EOS between documents has none), and the mixture's is all bits over all bytes."""
    import jax
    import jax.numpy as jnp
    from pretrainx.core import evaluate, train
    cfg = config_lib.override(tiny_gpt_on(bpe_folders, 2, plays=0.5, wiki=0.5),
                              {"model.vocab_size": 600})
    built = train.setup(cfg)
    params = jax.tree.map(jnp.zeros_like, built.state.params)
    runner = evaluate.EvalRunner(built.objective, cfg, built.mesh, built.dataset, "")
    metrics = runner.val_metrics(params, {}, {}, 0)
    tok, eos, bits = built.dataset.tokenizer, built.dataset.info["eos_id"], np.log2(600)
    tokens = bytes_ = 0
    for name in CORPORA:
        held_out = split_tokens(bpe_folders[name])[1]
        text = tok.decode([int(t) for t in held_out if t != eos])
        # the tail of the corpus, its documents joined without the blank lines between them
        assert text.replace("\n", "") in open(CORPORA[name], encoding="utf-8").read().replace(
            " \n", "\n").replace("\n", "")
        counted = len(text.encode("utf-8"))
        assert built.dataset.info["sources"][name]["val_bytes"] == counted
        assert metrics[f"val/{name}/bpb"] == pytest.approx(bits * len(held_out) / counted, rel=1e-5)
        tokens, bytes_ = tokens + len(held_out), bytes_ + counted
    # WikiText's text costs the plays' vocabulary more tokens a byte
    assert metrics["val/wiki/bpb"] > 1.1 * metrics["val/plays/bpb"]
    # the whole split's: all its bits over all its bytes, not a mean of the sources'
    assert metrics["val/bpb"] == pytest.approx(bits * tokens / bytes_, rel=1e-5)


@pytest.mark.slow
def test_clm_on_a_packed_mixture_resumes_bit_for_bit(folders, tmp_path):
    from resume_check import assert_kill_and_resume_is_exact
    cfg = config_lib.override(tiny_gpt_on(folders, 5, plays=0.7, wiki=0.3),
                              {"data.packing": "concat"})
    full, _ = assert_kill_and_resume_is_exact(cfg, tmp_path, kill_after=3)
    evals = [h for h in full.history if "val/loss" in h]
    # each source's held-out split is pooled on its own beside the mixture's
    assert evals and all({"val/plays/loss", "val/wiki/loss"} <= set(h) for h in evals)
    assert all(h["val/plays/loss"] != h["val/wiki/loss"] for h in evals)


@pytest.mark.slow
def test_a_mixture_changed_on_resume_is_logged_and_recorded(folders, tmp_path, caplog):
    from pretrainx.core import train
    cfg = tiny_gpt_on(folders, 4, plays=0.7, wiki=0.3)
    workdir = str(tmp_path / "run")
    assert train.run(cfg, workdir, stop_after=3).stopped_early    # its checkpoint: step 2
    changed = config_lib.override(cfg, {"data.sources": spec(folders, plays=0.2, wiki=0.8)})
    with caplog.at_level(logging.INFO):
        resumed = train.run(changed, workdir)
    assert int(resumed.state.step) == 4
    assert any("resume changes data.sources" in r.getMessage() and "wiki" in r.getMessage()
               for r in caplog.records)
    record = json.loads(open(os.path.join(workdir, "provenance.json")).read())
    assert record["resumes"][-1]["resumed_from_step"] == 2
    old, new = record["resumes"][-1]["config_changes"]["data.sources"]
    assert old == cfg.data.sources and new == changed.data.sources
    saved = json.loads(open(os.path.join(workdir, "config.json")).read())
    assert saved["data"]["sources"] == changed.data.sources
