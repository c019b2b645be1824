"""Special tokens, declared once for every trained vocabulary and every objective.

Each trained subword vocabulary starts with :data:`ALL` in this order, so the ids are the same
for every tokenizer this project trains (PAD=0, UNK=1, CLS=2, SEP=3, MASK=4, BOS=5, EOS=6, then
the T5 sentinels ``<extra_id_0>``.. at 7..106, ascending). Objectives look tokens up by *name*
(``tokenizer.token_id(MASK)``, :func:`sentinel_ids`), never by a hard-coded id, so a vocabulary
trained elsewhere with another order still works as long as it holds the names: T5's own
SentencePiece vocabulary, whose ``<extra_id_0>`` is its last id and the next ones descend from
there, gives span corruption exactly T5's inputs.

Char and byte vocabularies hold none of these: an objective names the ones it needs
(``DataRequest.special_tokens``) and the data pipeline appends them after the characters / bytes
(``tokenizer.with_special_tokens``), in the order asked. UL2's mode tokens (:data:`MODES`) are
appended the same way to any vocabulary that lacks them.
"""
from __future__ import annotations

from pretrainx.errors import UserError

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
        raise UserError(f"sentinel index must be >= 0, got {i}")
    return f"<extra_id_{i}>"


def sentinels(n: int = NUM_SENTINELS) -> list[str]:
    """``<extra_id_0>`` .. ``<extra_id_{n-1}>``."""
    return [sentinel(i) for i in range(n)]


#: UL2's paradigm tokens (Tay et al. 2022, section 3.1.2), prepended to a denoiser's inputs:
#: R-denoiser -> NLU, X-denoiser -> NLG, S-denoiser -> S2S. Not in :data:`ALL`: added on request.
NLU = "[NLU]"
NLG = "[NLG]"
S2S = "[S2S]"
MODES = [NLU, NLG, S2S]

#: the ordered list added to every trained vocabulary (ids 0..len(ALL)-1)
ALL = NAMED + sentinels(NUM_SENTINELS)


def special_tokens(num_sentinels: int = NUM_SENTINELS) -> list[str]:
    """The named special tokens, then ``num_sentinels`` sentinels (a prefix of :data:`ALL`)."""
    return NAMED + sentinels(num_sentinels)


def sentinel_ids(tokenizer, n: int) -> list[int]:
    """The ids of ``<extra_id_0>`` .. ``<extra_id_{n-1}>`` in ``tokenizer`` (by name)."""
    missing = [sentinel(i) for i in range(n) if not tokenizer.has_token(sentinel(i))]
    if missing:
        raise UserError(f"the tokenizer has no {missing[0]!r}: span corruption needs {n} "
                        f"sentinels (trained vocabularies reserve {NUM_SENTINELS})")
    return [tokenizer.token_id(sentinel(i)) for i in range(n)]


def special_ids(tokenizer) -> list[int]:
    """The ids of every token this file declares that ``tokenizer`` holds: the tokens masking
    never selects and a random replacement never draws."""
    has = getattr(tokenizer, "has_token", None)
    if has is None:
        return []
    return [tokenizer.token_id(t) for t in ALL + MODES if has(t)]


def id_or_none(tokenizer, name: str) -> int | None:
    """The id of token ``name`` where ``tokenizer`` holds it (char and byte vocabularies hold
    no EOS unless an objective added it), else None."""
    has = getattr(tokenizer, "has_token", None)
    return tokenizer.token_id(name) if has is not None and has(name) else None
