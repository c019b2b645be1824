"""The masking half of the masked objectives (``mlm``, ``clm_mlm``): the ``config.mlm`` settings,
the vocabulary tables the corruption draws from, and the masking rate of a batch. The corruption
itself is pure and lives in ``data/masking.py``."""
from __future__ import annotations

from pretrainx.data import masking
from pretrainx.errors import UserError


class MaskingMixin:
    """Mixed into a text objective whose ``tokenizer`` and ``model_config`` are set."""

    def _init_masking(self, config):
        m = config.mlm
        self.rate_end = float(m.rate)
        self.rate_start = float(m.rate_start)
        self.schedule = m.rate_schedule
        self.eval_rate = float(m.eval_rate)
        self.whole_word = bool(m.whole_word)
        masking.masking_rate(self.schedule, self.rate_start, self.rate_end, 0.0)   # checks names
        for name, r in (("rate", self.rate_end), ("rate_start", self.rate_start),
                        ("eval_rate", self.eval_rate)):
            if not 0.0 < r < 1.0:
                raise UserError(f"config.mlm.{name} must be in (0, 1), got {r}")
        self.tables = self.mask_id = None                 # no tokenizer: shapes only
        if self.tokenizer is not None:
            self.tables = masking.vocab_tables(self.tokenizer, self.model_config.vocab_size)
            self.mask_id = self.tables.mask_id

    def rate(self, ctx) -> float:
        """The masking rate of the batch for ``ctx`` (a BatchContext): the schedule's at the
        train step, ``eval_rate`` for validation."""
        if not ctx.train:
            return self.eval_rate
        return masking.masking_rate(self.schedule, self.rate_start, self.rate_end,
                                    ctx.step / max(ctx.total_steps, 1))
