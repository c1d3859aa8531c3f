"""Streaming a chat answer off the event loop.

A :class:`ChatWorker` (``QRunnable``) opens the chat system (once per pane; the
opened system is kept by the pane's :class:`PaneSession`) and streams one answer.
Its signals live on a separate :class:`ChatSignals` ``QObject`` that belongs to
the GUI thread, so every delivery is a queued call into the event loop.
"""
from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Signal


class ChatSignals(QObject):
    opened = Signal()
    note = Signal(str)  # a warning from opening the system (e.g. which run "tuned" is)
    piece = Signal(str)
    answered = Signal(object)  # core Answer
    failed = Signal(str, str)  # message, detail


@dataclass
class PaneSession:
    """One pane's system and conversation; the system is opened lazily by the first worker."""

    project: Path
    system_name: str
    history: list[dict[str, str]] = field(default_factory=list)
    system: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, on_warning: Callable[[str], None] = lambda message: None) -> Any:
        with self.lock:
            if self.system is None:
                from doctune.core.chat import open_system
                from doctune.core.errors import event_window_text
                from doctune.core.events import Events
                from doctune.core.project import Project

                def forward_warnings(event: dict) -> None:
                    if event.get("event") == "warning":
                        on_warning(event_window_text(event))

                self.system = open_system(Project.open(self.project), self.system_name, events=Events(forward_warnings))
            return self.system

    def close(self) -> None:
        with self.lock:
            backend = getattr(self.system, "backend", None)
            if backend is not None and hasattr(backend, "close"):
                backend.close()
            self.system = None


class ChatWorker(QRunnable):
    """Answer one question on one pane, emitting the text as it comes."""

    def __init__(self, session: PaneSession, question: str, signals: ChatSignals, cancel) -> None:
        super().__init__()
        self.session = session
        self.question = question
        self.signals = signals
        self.cancel = cancel
        self.setAutoDelete(True)

    def run(self) -> None:
        from doctune.core.errors import UserError, exception_window_text
        from doctune.core.isolation import ChildCrashed

        try:
            system = self.session.open(self.signals.note.emit)
            self.signals.opened.emit()
            for piece in system.stream(self.question, history=list(self.session.history), cancel=self.cancel):
                self.signals.piece.emit(piece)
            answer = system.last_answer
            self.session.history += [{"role": "user", "content": self.question},
                                     {"role": "assistant", "content": answer.text if answer else ""}]
            self.signals.answered.emit(answer)
        except ChildCrashed as exc:  # the model's process died; the next question starts a fresh one
            self.session.close()
            self.signals.failed.emit(exception_window_text(exc), "")
        except UserError as exc:  # in the window's words: the page and the button, not the command
            self.signals.failed.emit(exception_window_text(exc), "")
        except Exception as exc:  # noqa: BLE001 — shown to the user with its detail, never swallowed
            from doctune.core.events import Cancelled

            if isinstance(exc, Cancelled):
                self.signals.failed.emit("Stopped.", "")
                return
            self.signals.failed.emit(f"This pane could not answer: {exc}", traceback.format_exc())
