"""What Orbax prints that only repeats what pretrainx tells the user itself, filtered out.

- **Reader notices**: a read-only manager, a checkpoint's item folder without its own metadata
  file (the step's is read instead). ``pretrainx sample`` / ``eval`` should print no warning for
  either (``reader_notices_dropped``).
- **A save that could not write** (a full disk, a file size limit, a read-only folder): Orbax's
  background threads each log the write failure with its whole traceback, and tensorstore's
  writes still in flight then post their results to the save's event loop, which Orbax has
  already closed: each prints an unraisable "RuntimeError: Event loop is closed" traceback
  (about 300 for a tiny model), some after the process has said its error, and asyncio logs
  each of the loop's failed writes as an "exception was never retrieved". Orbax re-raises the
  same failure in the main thread at the next save or the final wait, where pretrainx tells it
  once, in one line (``checkpoint.raise_write_failure``). So, once ``failed_save_noise_dropped``
  is installed, the absl and asyncio records of a *write failure* and the closed-loop notices are
  dropped; every other record and unraisable exception passes as it is (a bug keeps its traceback).
"""
from __future__ import annotations

import contextlib
import logging
import sys
import traceback

#: the system's words for a write that could not happen (errno text, tensorstore's wording)
WRITE_FAILURES = ("Failed writing", "No space left", "File too large", "Read-only file system")
_READER_NOTICES = ("Given directory is read only", "Metadata file does not exist")


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def is_write_failure(error: BaseException) -> bool:
    """A failure of the storage, not of the code: an OSError, or tensorstore's text for one."""
    return isinstance(error, OSError) or any(w in one_line(error) for w in WRITE_FAILURES)


def _drop_reader_notices(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(_READER_NOTICES)


@contextlib.contextmanager
def reader_notices_dropped():
    """Orbax's reader notices (``_READER_NOTICES``) dropped from the absl logger, inside only."""
    absl_log = logging.getLogger("absl")
    absl_log.addFilter(_drop_reader_notices)
    try:
        yield
    finally:
        absl_log.removeFilter(_drop_reader_notices)


def _drop_write_failure_records(record: logging.LogRecord) -> bool:
    error = record.exc_info[1] if record.exc_info else None
    return error is None or not is_write_failure(error)


def _is_closed_loop_notice(unraisable) -> bool:
    """asyncio's refusal to schedule a callback on a closed loop, raised in a callback thread
    (``call_soon_threadsafe`` -> ``_check_closed``), and nothing else."""
    frames = traceback.extract_tb(unraisable.exc_traceback)
    return (isinstance(unraisable.exc_value, RuntimeError) and unraisable.object is None and
            str(unraisable.exc_value) == "Event loop is closed" and
            [f.name for f in frames[-2:]] == ["call_soon_threadsafe", "_check_closed"])


_installed = []


def failed_save_noise_dropped() -> None:
    """From now on in this process, drop the noise of a failed async save (see the module's
    docstring). Installed once: the notices come from threads, some after the run has ended."""
    if _installed:
        return
    for name in ("absl", "asyncio"):   # Orbax's threads; the futures of the closed loop
        logging.getLogger(name).addFilter(_drop_write_failure_records)
    previous = sys.unraisablehook

    def hook(unraisable):
        if not _is_closed_loop_notice(unraisable):
            previous(unraisable)

    sys.unraisablehook = hook
    _installed.append(hook)
