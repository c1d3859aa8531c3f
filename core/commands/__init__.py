"""The subcommands of ``doctune``, one module each, named after it (found by ``doctune.core.cli``); each has
``register(subparsers)``. What every command shares is here: ``CommandContext`` (what a handler is given),
``add_command`` and ``UsageError``.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from doctune.core.events import CancelToken, Events


class UsageError(Exception):
    """Wrong use of a command; exit code 1 with the message."""


@dataclass
class CommandContext:
    args: argparse.Namespace
    events: Events
    cancel: CancelToken
    jsonl: bool
    _project: Any = field(default=None, repr=False)

    def project(self):
        """The project named by ``-p``, ``$DOCTUNE_PROJECT`` or the current folder."""
        if self._project is None:
            from doctune.core.project import Project

            self._project = Project.locate(getattr(self.args, "project", None))
        return self._project

    def print(self, *objects: Any, **kwargs: Any) -> None:
        """Human output: stdout normally, stderr when stdout carries events."""
        from doctune.core.console import stderr_console, stdout_console

        console = stderr_console() if self.jsonl else stdout_console()
        console.print(*objects, **kwargs)


def add_command(sub: Any, name: str, handler: Callable[[CommandContext], int], help: str, **kwargs: Any) -> argparse.ArgumentParser:
    """Add a subcommand that also takes the global options; used by command modules."""
    parser = sub.add_parser(name, help=help, description=help, parents=[sub.common_parent], **kwargs)
    parser.set_defaults(handler=handler)
    return parser
