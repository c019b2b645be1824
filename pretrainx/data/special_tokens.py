"""Special tokens, declared once for every trained vocabulary and every objective.

Each trained subword vocabulary starts with :data:`ALL` in this order, so the ids are the same
for every tokenizer this project trains (PAD=0, UNK=1, CLS=2, SEP=3, MASK=4, BOS=5, EOS=6, then
the T5 sentinels ``<extra_id_0>``.. at 7..). Objectives look tokens up by *name*
(``tokenizer.token_id(MASK)``), never by a hard-coded id, so a vocabulary trained elsewhere with
another order still works as long as it holds the names.
"""
from __future__ import annotations

PAD = "[PAD]"
UNK = "[UNK]"
CLS = "[CLS]"
SEP = "[SEP]"
MASK = "[MASK]"
BOS = "<s>"
EOS = "</s>"

#: how many T5 span-corruption sentinels every trained vocabulary reserves
NUM_SENTINELS = 100

#: the named (non-sentinel) special tokens, in id order
NAMED = [PAD, UNK, CLS, SEP, MASK, BOS, EOS]


def sentinel(i: int) -> str:
    """The i-th T5 sentinel, ``<extra_id_i>``: marks the i-th dropped span in span corruption."""
    if i < 0:
        raise ValueError(f"sentinel index must be >= 0, got {i}")
    return f"<extra_id_{i}>"


def sentinels(n: int = NUM_SENTINELS) -> list[str]:
    """``<extra_id_0>`` .. ``<extra_id_{n-1}>``."""
    return [sentinel(i) for i in range(n)]


#: the ordered list added to every trained vocabulary (ids 0..len(ALL)-1)
ALL = NAMED + sentinels(NUM_SENTINELS)


def special_tokens(num_sentinels: int = NUM_SENTINELS) -> list[str]:
    """The named special tokens, then ``num_sentinels`` sentinels (a prefix of :data:`ALL`)."""
    return NAMED + sentinels(num_sentinels)
