"""SIGTERM (a preemption notice): save at the next step boundary, exit ``PREEMPTED_EXIT_CODE``.

A scheduler must tell a preempted run from a finished one, so a run stopped by SIGTERM exits 75
(EX_TEMPFAIL: "try again later") after its checkpoint has landed; rerunning the same command
resumes it. Exit codes of ``pretrainx train``: 0 finished, 2 a one-line user error, 75 stopped
by SIGTERM after saving, 1 anything else (a traceback: a bug).

Several processes: the signal may reach one process first, while Orbax's save is a barrier of
all of them, so the decision to stop is taken together: every ``train.preemption_check_every``
steps (default 10) the processes all-gather their flags and stop when any was raised. One
process sees the same at every step with no collective.

A SIGTERM during an evaluation does not wait for it: in one process the handler interrupts the
evaluation at once (``Preempted``); in several, the evaluator polls the agreed flag between its
batches and plug-ins (``should_stop``), where every process is at the same point.
"""
from __future__ import annotations

import signal

import jax
import numpy as np

PREEMPTED_EXIT_CODE = 75     # sysexits.h EX_TEMPFAIL
DEFAULT_CHECK_EVERY = 10     # steps between multi-process agreements

# A SIGTERM reached this process (through any watch): a caller that runs several runs in turn
# (a sweep's trials) stops before the next one, even when the run that caught it had ended.
_signalled = False


def signalled() -> bool:
    return _signalled


class Preempted(Exception):
    """Raised inside an evaluation when SIGTERM arrives; the loop saves and stops."""


class PreemptionWatch:
    """``with PreemptionWatch(every) as watch:`` -- SIGTERM sets a flag the loop reads through
    ``stop_at(step)``; inside ``watch.interruptible()`` one process raises ``Preempted`` at once."""

    def __init__(self, check_every: int = DEFAULT_CHECK_EVERY):
        self.check_every = max(int(check_every), 1)
        self.raised = False          # this process got the signal
        self.agreed = False          # every process knows some process got it
        self._interruptible = False
        self._previous = None
        self._installed = False

    def __enter__(self):
        global _signalled
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        except ValueError:      # not the main thread: leave signals alone
            pass
        if not isinstance(getattr(self._previous, "__self__", None), PreemptionWatch):
            # the outermost watch (a sweep worker's, or a lone run's): a SIGTERM caught by an
            # earlier watch of this process, since closed, is not one for this work
            _signalled = False
        return self

    def __exit__(self, *exc):
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)

    def _handle(self, signum, frame):
        global _signalled
        _signalled = True
        self.raised = True
        if self._interruptible and jax.process_count() == 1:
            self._interruptible = False
            raise Preempted("SIGTERM during an evaluation")

    def _any_process(self) -> bool:
        if jax.process_count() == 1:
            return self.raised
        from jax.experimental import multihost_utils
        flags = multihost_utils.process_allgather(np.asarray(int(self.raised), np.int32))
        return bool(np.any(flags))

    def stop_at(self, step: int) -> bool:
        """Whether the loop stops after ``step`` (the same answer in every process)."""
        if not self.agreed and (jax.process_count() == 1 or step % self.check_every == 0):
            self.agreed = self._any_process()
        return self.agreed

    def should_stop(self) -> bool:
        """For an evaluation's loop: the agreed flag now (a collective in several processes)."""
        if not self.agreed:
            self.agreed = self._any_process()
        return self.agreed

    def interruptible(self):
        watch = self

        class _Region:
            def __enter__(self):
                if watch.raised and jax.process_count() == 1:
                    raise Preempted("SIGTERM before an evaluation")
                watch._interruptible = True

            def __exit__(self, *exc):
                watch._interruptible = False
        return _Region()
