"""Errors whose message is written for the user.

Raise a subclass of ``UserError`` (or register a class with
``UserError.register``) when the message alone tells the user what went wrong
and what to do; the CLI prints it without a traceback and exits with 1.
"""
from __future__ import annotations

from abc import ABC


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
