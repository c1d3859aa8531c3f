"""The ``doctune`` command: every pipeline step as a subcommand.

Each subcommand is the module of its name in ``doctune.core.commands`` (found there;
``COMMAND_ORDER`` only orders the help); it has a ``register(subparsers)`` that adds
its parser with ``set_defaults(handler=…)``.
Handlers import heavy libraries (torch, transformers, llama.cpp) only when they
run, so ``doctune status`` starts fast.

Global options (before or after the subcommand): ``-p/--project DIR`` (else
``$DOCTUNE_PROJECT``, else the current folder) and ``--events jsonl`` (machine
readable event lines on stdout; see ``doctune.core.events`` for the fields).

Exit codes: ``doctune.core.exitcodes.ExitCode`` (0 success; 1 usage or fatal
error; 2 finished but some inputs failed, each reported; 130 cancelled by
SIGINT/SIGTERM at a safe point).
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import signal
import sys
from collections.abc import Callable
from typing import Any

from doctune.core.commands import CommandContext, UsageError
from doctune.core.events import Cancelled, CancelToken, Events, JsonlSink
from doctune.core.exitcodes import ExitCode

# The order commands are listed in ``doctune --help``: the journey's order. Each is the module of that name in
# ``doctune.core.commands``; a module there that is not listed comes after these, alphabetically.
COMMAND_ORDER = ("new", "add", "remove", "status", "index", "search", "teacher", "synth", "train", "export", "ask",
                 "compare", "eval", "report", "run", "gui", "sample")


def _common_options(parser: argparse.ArgumentParser, top: bool) -> None:
    default = None if top else argparse.SUPPRESS
    parser.add_argument("-p", "--project", metavar="DIR", default=default,
                        help="project folder (default: $DOCTUNE_PROJECT or the current folder)")
    parser.add_argument("--events", choices=["human", "jsonl"], default="human" if top else argparse.SUPPRESS,
                        help="how progress is shown: a human progress bar, or JSON lines on stdout for programs")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="doctune",
        description="Teach a small local model your documents, and measure whether it beats RAG.",
    )
    _common_options(parser, top=True)
    common = argparse.ArgumentParser(add_help=False)
    _common_options(common, top=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.common_parent = common  # type: ignore[attr-defined]
    for module in command_modules():
        module.register(sub)
    return parser


def command_modules() -> list[Any]:
    """The modules of ``doctune.core.commands`` that add subcommands (a ``register(subparsers)``), in help order."""
    import doctune.core.commands as package

    found = sorted(info.name for info in pkgutil.iter_modules(package.__path__))  # may miss some in a frozen app
    names = dict.fromkeys([*COMMAND_ORDER, *found])
    modules = [importlib.import_module(f"{package.__name__}.{name}") for name in names]
    return [module for module in modules if hasattr(module, "register")]


def _install_signal_handlers(cancel: CancelToken) -> None:
    def handle(signum: int, frame: Any) -> None:
        if cancel.cancelled:  # a second signal: stop now
            raise KeyboardInterrupt
        cancel.cancel()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def _make_events(jsonl: bool) -> tuple[Events, Callable[[], None]]:
    if jsonl:
        return Events(JsonlSink(sys.stdout)), lambda: None
    from doctune.core.console import HumanSink

    sink = HumanSink()
    return Events(sink), sink.close


def guided_entry(ctx: CommandContext) -> int:
    """What a bare ``doctune`` shows: what to do next, and the project's state if there is one."""
    from doctune.core.project import Project, ProjectError

    ctx.print("[bold]DocTune[/bold] — teach a small local model your documents, and measure whether it beats RAG.\n")
    try:
        project = Project.locate(getattr(ctx.args, "project", None))
    except ProjectError:
        ctx.print("No project here. Start one with:\n  doctune new DIR\n  doctune add FILES... -p DIR\n")
        build_parser().print_help()
        return 0
    ctx.print(f"Project: {project.config.project.name} ({project.root})")
    ctx.print("Run 'doctune status' for its documents, or 'doctune --help' for every command.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        args.handler = guided_entry
    jsonl = getattr(args, "events", "human") == "jsonl"
    events, close = _make_events(jsonl)
    events.stage = args.command or "doctune"
    cancel = CancelToken()
    _install_signal_handlers(cancel)
    context = CommandContext(args=args, events=events, cancel=cancel, jsonl=jsonl)
    try:
        code = args.handler(context)
    except Cancelled:
        close()
        events.emit("cancelled", message="Cancelled; finished work is kept and the command can be re-run to resume.",
                    window_message="Cancelled; finished work is kept. Run the step again to continue.")
        return ExitCode.CANCELLED
    except KeyboardInterrupt:
        close()
        events.emit("cancelled", message="Interrupted.")
        return ExitCode.CANCELLED
    except UsageError as exc:
        close()
        events.error(str(exc), fatal=True, **_advice(exc))
        return ExitCode.ERROR
    except Exception as exc:  # a fatal, expected-kind error: report it plainly
        close()
        if not _is_reportable(exc):
            raise
        events.error(str(exc), fatal=True, error_type=type(exc).__name__, **_advice(exc))
        return ExitCode.ERROR
    finally:
        close()
    return int(code or 0)


def _advice(exc: Exception) -> dict[str, str]:
    """``hint`` (CLI words) and ``window_hint`` (the window's words) of a user error, for its event."""
    from doctune.core.errors import advice_fields

    return advice_fields(exc)


def _is_reportable(exc: Exception) -> bool:
    """Errors whose message is meant for the user (no traceback needed)."""
    from doctune.core.errors import UserError

    return isinstance(exc, UserError)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
