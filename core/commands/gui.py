"""``doctune gui``: the desktop window.

The desktop package is imported only inside the handler, through importlib, so
``doctune.core`` never depends on Qt (see tests/core/test_boundaries.py).
"""
from __future__ import annotations

import importlib

from doctune.core.commands import CommandContext, add_command


def register(sub) -> None:
    parser = add_command(sub, "gui", cmd_gui, "Open the DocTune window.")
    parser.add_argument("--page", help="page to show first (documents, teacher, synthesize, train, export, compare, evaluate)")


def cmd_gui(ctx: CommandContext) -> int:
    app = importlib.import_module("doctune.desktop.app")
    return app.run(project=getattr(ctx.args, "project", None), page=ctx.args.page)
