"""The errors a user can act on: each prints as one line (no traceback unless ``-v``) and sets the exit code.

``lamini-lm`` maps them to exit codes: :class:`UsageError` (a flag, setting or path the user gave is wrong) exits
2, :class:`DataError` (an input file or a run's result is unusable) and any other :class:`LaminiError` exit 1,
Ctrl-C exits 130. Messages name the file, line, field or flag and say what to do.

Example:
    >>> from lamini_lm.errors import UsageError
    >>> str(UsageError("--threshold: must be in (0, 1], got 7"))
    '--threshold: must be in (0, 1], got 7'
"""

from __future__ import annotations

__all__ = ["DataError", "DataFileError", "LaminiError", "OfflineError", "OutputExistsError", "UsageError"]


class LaminiError(Exception):
    """Base of every error lamini-lm reports as one line; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class UsageError(LaminiError, ValueError):
    """A setting, flag or path given by the user that cannot be used (exit 2)."""

    exit_code = 2


class DataError(LaminiError, ValueError):
    """An input that cannot be read or used, or a run whose results are unusable (exit 1)."""

    exit_code = 1


class OutputExistsError(UsageError, FileExistsError):
    """An output folder that holds something this stage must not replace (exit 2)."""


class OfflineError(LaminiError, ConnectionError):
    """The Hub or the teacher cannot be reached; the message names the local alternative (exit 1)."""

    exit_code = 1


class DataFileError(DataError):
    """A row that cannot be used: the message names the file, the line (or row) and the field."""

    def __init__(self, path: str, line: int | None, field: str | None, problem: str, unit: str = "line"):
        self.path, self.line, self.field, self.problem = str(path), line, field, problem
        where = self.path if line is None else f"{self.path}, {unit} {line}"
        what = f"field {field!r}: " if field else ""
        super().__init__(f"{where}: {what}{problem}")
