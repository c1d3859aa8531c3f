"""Human output of the event stream: a rich progress bar and readable messages.

Everything goes to stderr, so a command's real output (``status --json``,
an answer) stays alone on stdout.
"""
from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from doctune.core.events import Event


class HumanSink:
    """Shows ``progress`` as bars (one per stage) and other events as lines."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or stderr_console()
        self._progress: Progress | None = None
        self._tasks: dict[str, Any] = {}

    def _bars(self) -> Progress:
        if self._progress is None:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[message]}", style="dim", markup=False),  # file names are not markup
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.start()
        return self._progress

    def __call__(self, event: Event) -> None:
        kind = event["event"]
        if kind == "progress":
            self._show_progress(event)
        elif kind == "metric":
            values = ", ".join(f"{k}={_fmt(v)}" for k, v in event.items() if k not in ("event", "stage", "time"))
            self.console.print(f"{event['stage']}: {values}", style="dim", markup=False)
        elif kind == "log":
            self.console.print(event["message"], markup=False)
        elif kind == "warning":
            self.console.print(f"[yellow]warning:[/yellow] {_with_hint(event)}")
        elif kind == "error":
            self.console.print(f"[red]error:[/red] {_with_hint(event)}")
        elif kind in ("done", "cancelled"):
            self.close()
            if event.get("message"):
                style = "green" if kind == "done" else "yellow"
                self.console.print(str(event["message"]), style=style, markup=False)

    def _show_progress(self, event: Event) -> None:
        bars = self._bars()
        stage = event["stage"]
        message = str(event.get("message") or "")[:60]
        if stage not in self._tasks:
            self._tasks[stage] = bars.add_task(stage, total=event.get("total"), message=message)
        bars.update(self._tasks[stage], completed=event["done"], total=event.get("total"), message=message)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._tasks.clear()


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _with_hint(event: Event) -> str:
    from rich.markup import escape

    text = escape(str(event.get("message", "")))
    if event.get("path"):
        text = f"{escape(str(event['path']))}: {text}"
    if event.get("hint") and str(event["hint"]) not in str(event.get("message", "")):  # a fatal error's message has it
        text += f" [dim]({escape(str(event['hint']))})[/dim]"
    return text


def stdout_console() -> Console:
    """Text a person or a program reads: never wrapped (a wrapped path or message cannot be searched for)."""
    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


def stderr_console() -> Console:
    """Messages, warnings and progress: never wrapped either, whatever the width of a terminal or its absence."""
    return Console(stderr=True, highlight=False, soft_wrap=True)
