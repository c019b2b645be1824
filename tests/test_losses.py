"""Cross-entropy against hand-computed values; the causal-LM objective's metrics."""
import math

import jax.numpy as jnp
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


def test_mse():
    assert float(losses.mse(jnp.array([1.0, 3.0]), jnp.array([0.0, 0.0]))) == pytest.approx(5.0)
    assert float(losses.mse(jnp.array([1.0, 3.0]), jnp.zeros(2), jnp.array([1.0, 0.0]))) == 1.0
