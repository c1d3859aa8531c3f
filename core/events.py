"""The event stream every long step writes, and the cancel token it obeys.

This module is the contract between a step and whoever watches it: the CLI's
progress bar, the ``--events jsonl`` output that the desktop app reads from a
child process, and the recorder the tests use.

Events
------
Each event is one flat JSON object with an ``event`` field. With
``doctune --events jsonl <command>`` every event is printed as one line on
stdout (nothing else is printed on stdout then; human text goes to stderr).

``event``      kind, one of ``progress``, ``metric``, ``log``, ``warning``,
               ``error``, ``done``, ``cancelled``.
``stage``      the step or phase that sent it (``ingest``, ``train``,
               ``export.quantize`` …); present on every event.
``time``       seconds since the epoch (float) when the event was made.

Fields by kind (all optional unless marked *):

- ``progress``: ``done``\\* and ``total`` (units of work, ``total`` is ``null``
  when unknown), ``message`` (what is being worked on), ``eta_s`` (seconds
  left, from the observed rate), ``unit`` (``files``, ``steps``, ``items``,
  ``bytes`` …), ``rate`` (units per second).
- ``metric``: named numbers, e.g. ``{"step": 10, "loss": 2.3, "lr": 1e-3,
  "tokens_per_s": 812.0}``; every numeric field is a metric.
- ``log``: ``message``\\* — something a person may want to read.
- ``warning``: ``message``\\*, optional ``path`` / ``item`` / ``hint`` /
  ``window_hint``.
- ``error``: ``message``\\*, optional ``path``, ``hint`` (what to do, in
  command-line words: ``doctune synth``, ``teacher.model_path in doctune.toml``),
  ``window_hint`` (the same advice in the window's words: the page and the
  button), ``detail`` (technical text). An ``error`` event on its own does not
  end the command: a per-file error is reported and the other files continue.
  A fatal error's ``message`` is the whole CLI text (with ``hint`` after " — ");
  the window shows the message without it, then ``window_hint``
  (``doctune.core.errors.event_window_text``).
- ``done``: the command finished; ``message`` and the result's fields
  (``exit_code`` is added by the CLI).
- ``cancelled``: the command stopped at a safe point after SIGINT/SIGTERM;
  state on disk is consistent and the step can be re-run to resume.
  ``window_message`` (any kind): the whole message in the window's words, shown
  there instead of ``message``.

The last line of a finished command is ``done``, ``cancelled`` or (for a
fatal failure) ``error`` with ``"fatal": true``.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

EVENT_KINDS = ("progress", "metric", "log", "warning", "error", "done", "cancelled")

Event = dict[str, Any]


class Cancelled(Exception):
    """Raised by a step that stopped at a safe point because it was asked to."""


class CancelToken:
    """Thread-safe flag a long step checks at safe points."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; return True early if cancelled meanwhile."""
        return self._event.wait(seconds)


class EventSink(Protocol):
    def __call__(self, event: Event) -> None: ...


class Events:
    """What a step calls to report; forwards plain dicts to a sink."""

    def __init__(self, sink: EventSink | None = None, stage: str = "doctune") -> None:
        self._sink = sink or (lambda event: None)
        self.stage = stage

    def child(self, stage: str) -> Events:
        """The same sink under another stage name."""
        return Events(self._sink, stage)

    def emit(self, kind: str, **fields: Any) -> None:
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        event: Event = {"event": kind, "stage": fields.pop("stage", None) or self.stage, "time": time.time()}
        event.update({key: value for key, value in fields.items() if value is not None})
        self._sink(event)

    def progress(self, done: float, total: float | None = None, message: str | None = None, **extra: Any) -> None:
        self.emit("progress", done=done, total=total, message=message, **extra)

    def metric(self, **values: Any) -> None:
        self.emit("metric", **values)

    def log(self, message: str, **extra: Any) -> None:
        self.emit("log", message=message, **extra)

    def warning(self, message: str, **extra: Any) -> None:
        self.emit("warning", message=message, **extra)

    def error(self, message: str, **extra: Any) -> None:
        self.emit("error", message=message, **extra)

    def done(self, message: str | None = None, **result: Any) -> None:
        self.emit("done", message=message, **result)

    def tracker(self, total: float | None, unit: str = "items", stage: str | None = None) -> ProgressTracker:
        return ProgressTracker(self if stage is None else self.child(stage), total, unit)


class ProgressTracker:
    """Counts units of work and emits ``progress`` with rate and ETA.

    Emits at most every ``min_interval`` seconds (and always for the last
    unit), so a fast loop does not flood the stream.
    """

    MIN_INTERVAL = 0.2  # seconds; tests set it to 0 to see every update

    def __init__(self, events: Events, total: float | None, unit: str = "items", min_interval: float | None = None) -> None:
        self.events = events
        self.total = total
        self.unit = unit
        self.done = 0.0
        self.min_interval = self.MIN_INTERVAL if min_interval is None else min_interval
        self._start = time.monotonic()
        self._last_emit = 0.0

    def advance(self, amount: float = 1, message: str | None = None, **extra: Any) -> None:
        self.done += amount
        self.update(self.done, message, **extra)

    def update(self, done: float, message: str | None = None, force: bool = False, **extra: Any) -> None:
        self.done = done
        now = time.monotonic()
        finished = self.total is not None and done >= self.total
        if not (force or finished or now - self._last_emit >= self.min_interval):
            return
        self._last_emit = now
        elapsed = now - self._start
        rate = done / elapsed if elapsed > 0 and done > 0 else None
        eta = (self.total - done) / rate if rate and self.total is not None else None
        self.events.progress(
            done, self.total, message, unit=self.unit,
            rate=round(rate, 3) if rate else None,
            eta_s=round(max(eta, 0.0), 1) if eta is not None else None,
            **extra,
        )


@dataclass
class RecordingSink:
    """Keeps every event in memory; for tests."""

    events: list[Event] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: str) -> list[Event]:
        return [event for event in self.events if event["event"] == kind]


class JsonlSink:
    """One JSON object per line, flushed at once (the GUI reads it live)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        line = json.dumps(event, ensure_ascii=False, default=str)
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()


def fanout(*sinks: Callable[[Event], None]) -> EventSink:
    """A sink that forwards to several sinks."""

    def sink(event: Event) -> None:
        for each in sinks:
            each(event)

    return sink
