"""The masking half of the masked objectives (``mlm``, ``clm_mlm``): the ``config.mlm`` settings,
the vocabulary tables the corruption draws from, and the masking rate of a batch. The corruption
itself is pure and lives in ``data/masking.py``."""
from __future__ import annotations

from pretrainx.data import masking
from pretrainx.objectives import settings


class MaskingMixin:
    """Mixed into a text objective whose ``tokenizer`` and ``model_config`` are set."""

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
