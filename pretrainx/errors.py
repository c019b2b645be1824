"""The errors whose message tells the user what to fix.

The CLI prints such an error as one line and exits 2; any other exception is a bug and keeps its
traceback. The distinction is made by type, never by reading the source that raised it: the code on
disk may change while a run is going (a checkout, an editable install being edited)."""


class UserError(ValueError):
    """A value, file or setting given by the user that cannot work; the message names it.

    A ``ValueError`` so that callers catching bad values keep catching it."""


class UnknownName(UserError, KeyError):
    """A name (config key, registry entry, special token) that is not there; the message lists
    what is."""

    def __str__(self) -> str:   # KeyError's str quotes its message; this one reads as a sentence
        return str(self.args[0]) if self.args else ""


class MissingExtra(UserError, ImportError):
    """An optional package the requested feature needs is not installed; the message names the
    pip extra that brings it."""
