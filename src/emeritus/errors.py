"""The errors every layer raises, each with the CLI exit status it maps to.

A message is one line naming what is wrong; the CLI prints it and exits with `exit_code`.
"""


class EmeritusError(Exception):
    """Base class: an operation was refused and nothing was changed."""

    exit_code = 1


class InvalidInput(EmeritusError):
    """Malformed input: a bad date, a bad name, a missing reason."""

    exit_code = 2


class NotFound(EmeritusError):
    """A named thing (model, event) does not exist."""

    exit_code = 3


class Conflict(EmeritusError):
    """The request is well formed but the rules refuse it (illegal transition, short notice)."""

    exit_code = 4


class IntegrityError(EmeritusError):
    """Stored data failed verification (a broken event chain)."""

    exit_code = 5
