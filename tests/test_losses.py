"""Cross-entropy against hand-computed values; the causal-LM objective's metrics."""
import math

import jax.numpy as jnp
import numpy as np
import pytest

from pretrainx.objectives import losses


def test_cross_entropy_by_hand():
    logits = jnp.array([[[0.0, math.log(3.0)], [math.log(2.0), 0.0]]])   # p = (1/4, 3/4), (2/3, 1/3)
    targets = jnp.array([[1, 1]])
    loss, nll, acc, n = losses.cross_entropy(logits, targets)
    expected = (-math.log(0.75) - math.log(1 / 3)) / 2
    assert float(loss) == pytest.approx(expected) and float(nll) == pytest.approx(expected)
    assert float(acc) == 0.5 and float(n) == 2


def test_padding_weights_exclude_tokens():
    logits = jnp.array([[[0.0, math.log(3.0)], [math.log(2.0), 0.0]]])
    loss, _, _, n = losses.cross_entropy(logits, jnp.array([[1, 1]]), weights=jnp.array([[1.0, 0.0]]))
    assert float(loss) == pytest.approx(-math.log(0.75)) and float(n) == 1


def test_label_smoothing_mixes_in_the_uniform_cross_entropy():
    logits = jnp.array([[[0.0, math.log(3.0)]]])
    loss, nll, _, _ = losses.cross_entropy(logits, jnp.array([[1]]), label_smoothing=0.1)
    uniform_ce = -(math.log(0.25) + math.log(0.75)) / 2
    assert float(loss) == pytest.approx(0.9 * -math.log(0.75) + 0.1 * uniform_ce)
    assert float(nll) == pytest.approx(-math.log(0.75))   # reported NLL is unsmoothed


def test_target_logprobs_match_a_hand_computation_and_the_cross_entropy():
    logits = jnp.array([[[0.0, math.log(3.0)], [math.log(3.0), 0.0]]])    # p = (.25, .75), (.75, .25)
    targets = jnp.array([[1, 1]])
    logp, entropy = losses.target_logprobs(logits, targets)
    np.testing.assert_allclose(logp, [[math.log(0.75), math.log(0.25)]], rtol=1e-6)
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    np.testing.assert_allclose(entropy, [[h, h]], rtol=1e-6)
    _, nll, _, _ = losses.cross_entropy(logits, targets)
    assert float(nll) == pytest.approx(float(-logp.mean()))
    hot, _ = losses.target_logprobs(logits, targets, temperature=0.5)   # sharper: p(.75) -> .9
    assert float(hot[0, 0]) == pytest.approx(math.log(0.9), rel=1e-5)
