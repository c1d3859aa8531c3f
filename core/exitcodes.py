"""The exit codes of the ``doctune`` command, in one place: the CLI, its commands and the window's job runner
all read them from here."""
from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    """The command did everything it was asked."""
    ERROR = 1
    """Wrong use of the command, or a fatal error (reported as an ``error`` event)."""
    PARTIAL = 2
    """The command finished, but some inputs failed; each is reported and a re-run retries them."""
    CANCELLED = 130
    """Stopped by SIGINT/SIGTERM at a safe point; finished work is kept and a re-run resumes."""
