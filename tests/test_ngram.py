"""The n-gram baseline: exact math on a tiny corpus, and the bigram on Tiny Shakespeare."""
import math
import os

import numpy as np
import pytest

from conftest import SHARED_DATA
from pretrainx.tools import ngram

SHAKESPEARE = os.path.join(SHARED_DATA, "tinyshakespeare", "input.txt")


def test_bigram_mle_by_hand():
    # "ababa" (a=0, b=1): pairs a->b twice, b->a twice
    lm = ngram.NGramLM(n=2, k=0.0, vocab_size=2).fit([0, 1, 0, 1, 0])
    # P(b|a) = 2/2 = 1, P(a|b) = 2/2 = 1 -> loss 0 on the same text
    assert lm.evaluate([0, 1, 0])["loss"] == pytest.approx(0.0)
    lm = ngram.NGramLM(n=2, k=0.0, vocab_size=3).fit([0, 1, 0, 2, 0])
    # a->b 1, a->c 1, b->a 1, c->a 1: P(b|a) = 1/2, P(a|b) = 1
    m = lm.evaluate([0, 1, 0])
    assert m["loss"] == pytest.approx(math.log(2) / 2)
    assert m["perplexity"] == pytest.approx(math.sqrt(2))
    assert m["bits_per_token"] == pytest.approx(0.5)


def test_unseen_event_under_mle_is_inf_and_reported():
    lm = ngram.NGramLM(n=2, k=0.0, vocab_size=3).fit([0, 1, 0, 1])
    m = lm.evaluate([0, 1, 2])             # b->c never seen
    assert m["loss"] == math.inf and m["zero_prob_events"] == 1
    assert m["loss_seen"] == pytest.approx(0.0)


def test_add_k_smoothing_by_hand():
    lm = ngram.NGramLM(n=2, k=1.0, vocab_size=3).fit([0, 1, 0, 1])
    # counts a->b 2, b->a 1; P(c|b) = (0+1)/(1+3) = 1/4, P(b|a) = (2+1)/(2+3) = 3/5
    lp = lm.log_probs([0, 1, 2])
    assert np.allclose(lp, [math.log(3 / 5), math.log(1 / 4)])


def test_unigram_and_trigram_by_hand():
    uni = ngram.NGramLM(n=1, k=0.0, vocab_size=2).fit([0, 0, 0, 1])
    assert uni.log_probs([0, 1]) == pytest.approx([math.log(3 / 4), math.log(1 / 4)])
    tri = ngram.NGramLM(n=3, k=0.0, vocab_size=2).fit([0, 0, 1, 0, 0, 0])
    # contexts (0,0)->1, (0,1)->0, (1,0)->0, (0,0)->0, so P(1|00) = 1/2, P(0|01) = 1
    assert tri.log_probs([0, 0, 1, 0]) == pytest.approx([math.log(1 / 2), 0.0])


@pytest.mark.skipif(not os.path.exists(SHAKESPEARE), reason=f"real data not found at {SHAKESPEARE}")
def test_bigram_on_tiny_shakespeare(capsys):
    with open(SHAKESPEARE, encoding="utf-8") as f:
        text = f.read()
    smoothed = ngram.fit_and_evaluate(text, "char", n=2, k=1.0, val_fraction=0.1)
    assert 2.4 < smoothed["val"]["loss"] < 2.55            # measured 2.482
    assert smoothed["val"]["bits_per_char"] == pytest.approx(smoothed["val"]["loss"] / math.log(2))
    mle = ngram.fit_and_evaluate(text, "char", n=2, k=0.0, val_fraction=0.1)
    assert 2.4 < mle["train"]["loss"] < 2.55               # measured 2.452
    assert mle["val"]["loss"] == math.inf and mle["val"]["zero_prob_events"] > 0
    assert 2.4 < mle["val"]["loss_seen"] < 2.55
    assert ngram.main(["--text", SHAKESPEARE, "--k", "1"]) == 0
    assert "val: loss 2.48" in capsys.readouterr().out
