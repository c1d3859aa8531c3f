"""Errors whose message is written for the user.

Raise a subclass of ``UserError`` (or register a class with
``UserError.register``) when the message alone tells the user what went wrong
and what to do; the CLI prints it without a traceback and exits with 1.
"""
from __future__ import annotations

import errno
from abc import ABC
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class UserError(Exception, ABC):
    """An error with a plain-words message for the user, optionally a hint."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message if not hint else f"{message} — {hint}")
        self.hint = hint


def _register_known() -> None:
    from doctune.core.config import ConfigError
    from doctune.core.project import ProjectError

    UserError.register(ConfigError)
    UserError.register(ProjectError)


_register_known()


def write_failure_reason(exc: OSError) -> str:
    """Plain words for why a write failed."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        return "a file is in the way of a folder"
    return exc.strerror or str(exc)


@contextmanager
def disk_errors(what: str, folder: Path, error_type: type[UserError], hint: str) -> Iterator[None]:
    """Turn a failed write (disk full, permissions, a file in the way) into ``error_type`` naming the folder."""
    try:
        yield
    except OSError as exc:
        raise error_type(f"Could not write the {what} in {folder}: {write_failure_reason(exc)}.", hint) from None
