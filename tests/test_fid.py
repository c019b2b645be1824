"""FID: the Fréchet distance against closed forms, the cached classifier features, the protocol's
real-data floor, and the evaluators' outputs."""
import dataclasses
import os

import numpy as np
import pytest
import scipy.linalg

from conftest import data_config
from pretrainx.evaluators import fid
from pretrainx.data.images import load_image_arrays, to_unit_range
from pretrainx.objectives.base import EvalContext


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    var1, var2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    exact = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert fid.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(exact)
    assert fid.frechet_distance(mu1, np.diag(var1), mu1, np.diag(var1)) == pytest.approx(0, abs=1e-9)


def test_frechet_distance_of_full_covariances_matches_sqrtm_formula():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    reference = (np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
                 - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real))
    value = fid.frechet_distance(mu1, s1, mu2, s2)
    assert value == pytest.approx(reference, rel=1e-8)
    assert value == pytest.approx(fid.frechet_distance(mu2, s2, mu1, s1), rel=1e-8)


def test_sample_statistics_converge_to_the_population_distance():
    rng = np.random.default_rng(2)
    x = rng.normal(0.0, 1.0, (20000, 3))
    y = rng.normal(1.0, 2.0, (20000, 3))
    # per dimension: (0 - 1)^2 + (1 - 2)^2 = 2, three dimensions
    assert fid.frechet_distance(*fid.gaussian_stats(x), *fid.gaussian_stats(y)) == pytest.approx(
        6.0, rel=0.05)


DIGITS = data_config(**{"kind": "digits", "heldout_fraction": 0.1})
PROTOCOL = fid.FidProtocol(num_samples=180, num_reference=0, seed=0, classifier_steps=60)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("fid_cache"))


def test_classifier_features_are_cached_and_the_floor_is_below_noise(cache_dir):
    arrays = load_image_arrays(DIGITS)
    scorer = fid.FidScorer(arrays, PROTOCOL, cache_dir)
    files = os.listdir(scorer.cache_dir)
    assert {os.path.splitext(f)[1] for f in files if f.startswith("classifier_")} == {
        ".msgpack", ".json"}
    reloaded = fid.FidScorer(arrays, PROTOCOL, cache_dir)       # from disk, no training
    probe = to_unit_range(arrays.heldout_images[:7])
    np.testing.assert_allclose(reloaded.extractor(probe), scorer.extractor(probe), rtol=1e-5,
                               atol=1e-5)
    floor = scorer.real_floor()
    noise = np.random.default_rng(0).uniform(-1, 1, (180, 8, 8, 1)).astype(np.float32)
    assert 0 <= floor < scorer.score(noise)
    assert scorer.score(arrays.heldout_images[:180]) == pytest.approx(floor, rel=1e-5)


def test_generated_float_images_are_scored_as_uint8_like_the_real_ones(cache_dir):
    from pretrainx.data.images import to_uint8
    scorer = fid.FidScorer(load_image_arrays(DIGITS), PROTOCOL, cache_dir)
    # float images between the 256 levels: what a generator gives, what no real image holds
    images = np.random.default_rng(3).uniform(-1, 1, (180, 8, 8, 1)).astype(np.float32)
    assert scorer.score(images) == scorer.score(to_uint8(images))


def test_heldout_reference_swaps_the_roles_of_the_splits(cache_dir):
    # digits with 120 held out: the classifier and reference on those 120, the floor from the
    # first 120 training images (what a generator that copied its training set would score)
    arrays = load_image_arrays(data_config(kind="digits", heldout_fraction=120 / 1797))
    protocol = dataclasses.replace(PROTOCOL, num_samples=120, reference_split="heldout")
    scorer = fid.FidScorer(arrays, protocol, cache_dir)
    assert scorer.cache_dir.endswith("digits-heldout120-heldout-reference")
    np.testing.assert_array_equal(scorer._reference_images(), arrays.heldout_images)
    assert scorer.real_floor() == pytest.approx(scorer.score(arrays.train_images[:120]), rel=1e-5)
    assert scorer.score(arrays.heldout_images) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="fid_reference_split"):
        fid.FidScorer(arrays, dataclasses.replace(protocol, reference_split="test"), cache_dir)


def test_evaluators_write_grids_and_report_fid(cache_dir, tmp_path):
    arrays = load_image_arrays(DIGITS)
    calls = []

    def generate(params, rng, num, sampler=None, steps=None):
        calls.append((num, sampler, steps))
        return to_unit_range(arrays.heldout_images[:num])        # a perfect "generator"
    ctx = EvalContext(params=None, frozen={}, step=1200, workdir=str(tmp_path), rng=None,
                      mesh=None, val_data=None, samples_dir=str(tmp_path / "samples"))
    grid = fid.SampleGridEvaluator(generate, num=10)
    assert list(grid(ctx)) == []
    from PIL import Image
    with Image.open(tmp_path / "samples" / "step_001200.png") as im:
        assert im.size == (4 * 10 + 2, 3 * 10 + 2)               # 4 columns, 3 rows, 2-px gaps

    evaluator = fid.FidEvaluator(generate, DIGITS, PROTOCOL, [("ddim", 20), ("ancestral", 200)],
                                 cache_dir)
    results = dict(evaluator(ctx))     # an eval during training: the first sampler only
    assert set(results) == {"fid_real_floor", "fid"}
    assert results["fid"] == pytest.approx(results["fid_real_floor"], rel=1e-5)
    assert calls[-1] == (180, "ddim", 20)
    del calls[:]
    final = dict(evaluator(dataclasses.replace(ctx, final=True)))   # the last eval: all of them
    assert set(final) == {"fid", "fid/ancestral_200"}                # the floor only once
    assert calls == [(180, "ddim", 20), (180, "ancestral", 200)]
    every = fid.FidEvaluator(generate, DIGITS, PROTOCOL, [("ddim", 20), ("ancestral", 200)],
                             cache_dir, extra_at="every")
    assert set(dict(every(ctx))) == {"fid_real_floor", "fid", "fid/ancestral_200"}
    with pytest.raises(ValueError, match="fid_extra_at"):
        fid.FidEvaluator(generate, DIGITS, PROTOCOL, [("ddim", 20)], cache_dir, extra_at="last")


def test_missing_inception_weights_give_a_clear_error(cache_dir):
    with pytest.raises(FileNotFoundError, match="register"):
        fid.FidScorer(load_image_arrays(DIGITS), fid.FidProtocol(extractor="inception_v3"),
                      cache_dir)
