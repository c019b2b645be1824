"""The masking half of the masked objectives (``mlm``, ``clm_mlm``): the ``config.mlm`` settings,
the vocabulary tables the corruption draws from, the masking rate of a batch, and fill-mask (what
``pretrainx sample`` and the eval samples print for a prompt holding [MASK]). The corruption
itself is pure and lives in ``data/masking.py``.

Fill-mask reads every [MASK] of the prompt in one forward pass (as BERT was trained: each mask
predicted from the unmasked text around it) and prints the text with each [MASK] filled, then a
table of each mask's top candidates. The table is the model's distribution at temperature 1 over
ordinary tokens (special tokens are never candidates: a [MASK] never fills a [MASK]), so it is the
same for every seed; the filled text takes the top candidate at temperature 0 and otherwise
samples each mask from that distribution at ``--temperature`` (among the ``--top-k`` most likely
when > 0) with ``--seed``.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from pretrainx.data import masking
from pretrainx.data import special_tokens as st
from pretrainx.errors import UserError
from pretrainx.objectives import settings

#: candidates the fill-mask table lists for each [MASK]
CANDIDATES_SHOWN = 5


@dataclasses.dataclass(frozen=True)
class MaskFill:
    """One [MASK] of a prompt, filled."""
    position: int                              # its token index in the prompt (from 0)
    candidates: tuple[tuple[int, float], ...]  # (token id, probability), most likely first
    chosen: int                                # the token id put in its place


class MaskingMixin:
    """Mixed into a text objective whose ``tokenizer`` and ``model_config`` are set; fill-mask
    needs ``mask_logits(params, ids)`` from the objective (its model on the prompt)."""

    def _init_masking(self, config):
        m = config.mlm
        self.rate_end = float(m.rate)
        self.rate_start = float(m.rate_start)
        self.schedule = m.rate_schedule
        self.eval_rate = float(m.eval_rate)
        self.whole_word = bool(m.whole_word)
        self.tables = self.mask_id = None                 # no tokenizer: shapes only
        if self.tokenizer is not None:
            self.tables = masking.vocab_tables(self.tokenizer, self.model_config.vocab_size)
            self.mask_id = self.tables.mask_id

    @classmethod
    def check_config(cls, config):
        """The masking rates (the schedule's endpoints and the validation rate) in (0, 1): a rate
        of 0 masks nothing to learn from, 1 leaves no context."""
        super().check_config(config)
        settings.choice(config, "mlm.rate_schedule", masking.SCHEDULES)
        for name in ("rate", "rate_start", "eval_rate"):
            settings.number(config, f"mlm.{name}", 0.0, 1.0, low_open=True, high_open=True)

    def rate(self, ctx) -> float:
        """The masking rate of the batch for ``ctx`` (a BatchContext): the schedule's at the
        train step, ``eval_rate`` for validation."""
        if not ctx.train:
            return self.eval_rate
        return masking.masking_rate(self.schedule, self.rate_start, self.rate_end,
                                    ctx.step / max(ctx.total_steps, 1))

    # --- fill-mask ----------------------------------------------------------------------------
    def masked_prompt_ids(self, prompt: str, room: int) -> list[int]:
        """The prompt's ids; one line naming [MASK] when it holds none, or when it is longer
        than the ``room`` the model reads."""
        ids = self.spec.require_tokenizer("fill-mask").encode(prompt)
        if self.mask_id not in ids:
            raise UserError(f"the prompt {prompt!r} has no {st.MASK}: put {st.MASK} where a "
                            f"token is to be filled, e.g. --prompt \"ROMEO: I {st.MASK} thee\"")
        if len(ids) > room:
            raise UserError(f"the prompt has {len(ids)} tokens; the model reads at most {room}")
        return ids

    def fill_masks(self, logits_TxV, ids: list[int], *, temperature: float, top_k: int,
                   seed: int) -> tuple[list[int], list[MaskFill]]:
        """(the ids with every [MASK] filled, one ``MaskFill`` per [MASK]) from the model's
        logits at the prompt's positions (module docstring: what is drawn and how)."""
        logits_TxV = np.asarray(logits_TxV, np.float64)[:, :len(self.tables.special)]
        ordinary = ~self.tables.special[:logits_TxV.shape[1]]
        rng = np.random.default_rng(seed)
        filled, fills = list(ids), []
        for t in [t for t, i in enumerate(ids) if i == self.mask_id]:
            logits = np.where(ordinary, logits_TxV[t], -np.inf)
            probs = _softmax(logits)
            top = np.argsort(-probs, kind="stable")[:CANDIDATES_SHOWN]
            chosen = int(top[0]) if temperature == 0 else _draw(rng, logits, temperature, top_k)
            filled[t] = chosen
            fills.append(MaskFill(t, tuple((int(i), float(probs[i])) for i in top), chosen))
        return filled, fills

    def fill_mask_command(self, params, options: dict, room: int) -> str:
        """``pretrainx sample`` on a prompt with [MASK]s: the filled text, then the table."""
        ids = self.masked_prompt_ids(options["prompt"], room)
        filled, fills = self.fill_masks(self.mask_logits(params, ids), ids,
                                        temperature=float(options["temperature"]),
                                        top_k=int(options["top_k"] or 0), seed=int(options["seed"]))
        return self.tokenizer.decode(filled) + "\n\n" + candidates_table(self.tokenizer, fills)


def candidates_table(tokenizer, fills: list[MaskFill]) -> str:
    """Each [MASK]'s top candidates, one line each: mask number, its token position in the
    prompt, rank, the candidate's text (quoted: a space shows) and its probability."""
    lines = [f"top {CANDIDATES_SHOWN} candidates for each {st.MASK} (probabilities at "
             f"temperature 1):", "mask  token  rank  candidate         probability"]
    for n, fill in enumerate(fills, 1):
        for rank, (token, prob) in enumerate(fill.candidates, 1):
            where = f"{n:>4}  {fill.position:>5}" if rank == 1 else " " * 11
            lines.append(f"{where}  {rank:>4}  {tokenizer.decode([token])!r:<16}  {prob:.4f}")
    return "\n".join(lines)


def _softmax(logits):
    z = np.exp(logits - logits.max())
    return z / z.sum()


def _draw(rng: np.random.Generator, logits, temperature: float, top_k: int) -> int:
    """One token from softmax(logits / temperature), among the ``top_k`` largest when > 0."""
    scaled = logits / temperature
    if top_k:
        kth = np.sort(scaled)[-min(top_k, len(scaled))]
        scaled = np.where(scaled < kth, -np.inf, scaled)
    return int(rng.choice(len(scaled), p=_softmax(scaled)))
