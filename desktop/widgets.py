"""Small widgets the pages share: headings, explanations, and a job's progress line."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QProcess, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from doctune.desktop.jobs import CANCELLED, FAILED, PARTIAL, SUCCEEDED, Job, job_program
from doctune.desktop.plotlib import plot_library


def heading(text: str) -> QLabel:
    label = QLabel(text)
    font = label.font()
    font.setPointSizeF(font.pointSizeF() * 1.6)
    font.setBold(True)
    label.setFont(font)
    return label


def explanation(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setObjectName("explanation")
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class ElidedLabel(QLabel):
    """One line of text that shortens itself with "…" to the width it is given (the whole text in its tooltip),
    so a long file name never makes its layout wider than the window."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.full_text = ""
        self.setMinimumWidth(40)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.set_full_text(text)

    def set_full_text(self, text: str) -> None:
        self.full_text = text
        self.setToolTip(text)
        self._elide()

    def resizeEvent(self, event) -> None:  # noqa: N802 — Qt's name
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        self.setText(self.fontMetrics().elidedText(self.full_text, Qt.TextElideMode.ElideMiddle, max(self.width(), 40)))


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def open_in_system(parent: QWidget, path, what: str) -> bool:
    """Open ``path`` with the system's program for it; when there is none, say where it is instead."""
    if QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))):
        return True
    show_error(parent, f"No program on this computer could open the {what}. It is here:\n{path}")
    return False


def show_error(parent: QWidget, message: str, detail: str = "") -> None:
    box = QMessageBox(QMessageBox.Icon.Warning, "DocTune", message, QMessageBox.StandardButton.Ok, parent)
    if detail:
        box.setDetailedText(detail)
    box.open()


PHASES = {
    "train.replay": "Generating the base student's own answers to keep its general skills (once per student)",
    "train": "Training the student",
    "synthesize": "Generating study material with the teacher",
    "questions": "Writing held-out questions",
    "export.write": "Writing the GGUF file",
    "export.quantize": "Quantizing",
    "export.verify": "Checking the exported file against the model",
    "eval.answer": "Answering the held-out questions",
    "eval.judge": "Judging the open answers",
    "index": "Updating the search index",
    "ingest": "Reading documents",
}


def phase_name(stage: str) -> str:
    """What a step's stage is doing, in words ("train.replay" → "Generating the base student's own answers…")."""
    while stage:
        if stage in PHASES:
            return PHASES[stage]
        stage = stage.rpartition(".")[0]
    return "Working…"


class JobProgress(QWidget):
    """Progress bar, message, ETA and a Cancel button for the page's current job."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job: Job | None = None
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.eta = QLabel("")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop at the next safe point; finished work is kept (Esc)")
        self.cancel_button.clicked.connect(self.cancel)
        QShortcut(QKeySequence("Esc"), self, self.cancel)  # active while this page's progress line is shown
        row = QHBoxLayout()
        row.addWidget(self.bar, 1)
        row.addWidget(self.eta)
        row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.message)
        self.setVisible(False)

    def follow(self, job: Job) -> None:
        self.job = job
        self.bar.setRange(0, 0)
        self.message.setText(f"{job.record.title}: starting…")
        self.message.setStyleSheet("")
        self.eta.setText("")
        self.cancel_button.setEnabled(True)
        self.setVisible(True)
        job.event.connect(self._on_event)
        job.finished.connect(self._on_finished)

    def cancel(self) -> None:
        if self.job is not None and self.job.running:
            self.job.cancel()
            self.cancel_button.setEnabled(False)
            self.message.setText("Stopping at the next safe point…")

    def _on_event(self, event: dict) -> None:
        """The job's one progress line: bar, phase and the ETA of the phase running now (from its measured rate)."""
        stopping = self.job is not None and self.job.cancel_requested
        if event["event"] == "progress":
            total, done = event.get("total"), event.get("done", 0)
            if total:
                self.bar.setRange(0, 1000)
                self.bar.setValue(int(1000 * min(done / total, 1.0)))
                self.bar.setFormat(f"{done:g} / {total:g} {event.get('unit', '')}".strip())
            if not stopping:
                self.message.setText(str(event.get("message") or phase_name(event.get("stage", ""))))
            if "eta_s" in event:
                self.eta.setText(f"about {format_seconds(event['eta_s'])} left")
        elif event["event"] in ("log", "warning", "error") and event.get("message") and not stopping:
            from doctune.core.errors import event_window_text

            self.message.setText(event_window_text(event))  # the window's words: page and button, not the command

    def _on_finished(self, state: str) -> None:
        assert self.job is not None
        self.bar.setRange(0, 1000)
        self.bar.setValue(1000 if state == SUCCEEDED else max(self.bar.value(), 0))  # -1 would hide "Failed"
        self.bar.setFormat({SUCCEEDED: "Done", PARTIAL: "Done, with problems", CANCELLED: "Cancelled",
                            FAILED: "Failed"}.get(state, state))
        self.eta.setText("")
        self.cancel_button.setEnabled(False)
        self.message.setText(self.job.record.message)
        self.message.setStyleSheet("color: #c0392b;" if state == FAILED else "")


def run_cli_json(parent: QObject, args: list[str], on_result: Callable[[dict | None, str], None]) -> QProcess:
    """Run a quick CLI command that prints one JSON object, without blocking; call back with (data, error)."""
    program, prefix = job_program()
    process = QProcess(parent)

    def finished(code: int, _status) -> None:
        out = bytes(process.readAllStandardOutput()).decode("utf-8", errors="replace")
        err = bytes(process.readAllStandardError()).decode("utf-8", errors="replace")
        process.deleteLater()
        try:
            on_result(json.loads(out) if code == 0 else None, err.strip())
        except json.JSONDecodeError:
            on_result(None, (err or out).strip())

    process.finished.connect(finished)
    process.start(program, [*prefix, *args])
    return process


def whole_number_axis(pg, orientation: str = "bottom"):
    """A pyqtgraph axis that ticks whole numbers only (training steps): the default also ticks 1.5, 2.5… when
    few values are shown."""

    class WholeNumberAxis(pg.AxisItem):
        def tickSpacing(self, minVal, maxVal, size):  # noqa: N802, N803 — pyqtgraph's names
            levels = [(spacing, offset) for spacing, offset in super().tickSpacing(minVal, maxVal, size) if spacing >= 1]
            return levels or [(1.0, 0.0)]

    return WholeNumberAxis(orientation=orientation)


class LazyPlot(QWidget):
    """A pyqtgraph plot built once the page is shown and pyqtgraph is imported (off the GUI thread, see
    ``doctune.desktop.plotlib``), so neither the first paint nor opening the page waits for the import.

    ``configure(plot)`` is called once on the new ``PlotWidget``: it draws whatever data the page already
    holds. Until then ``widget`` is None and the page only keeps its data.
    """

    def __init__(self, configure: Callable[[Any], None], minimum_height: int = 240, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._configure = configure
        self.widget = None
        self._requested = False
        self.setMinimumHeight(minimum_height)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if not self._requested:
            self._requested = True
            plot_library().when_ready(self._build)

    def _build(self) -> None:
        try:
            import pyqtgraph as pg
        except ImportError as exc:  # a broken install: say so where the chart would be, the page still works
            message = QLabel(f"The chart cannot be shown: the plotting library pyqtgraph failed to load ({exc}). "
                             "Reinstall DocTune's dependencies (python3 bootstrap.py setup) to get it back.")
            message.setWordWrap(True)
            self._layout.addWidget(message)
            return

        from doctune.desktop.theme import configure_pyqtgraph

        configure_pyqtgraph(pg)
        self.widget = pg.PlotWidget()
        self._layout.addWidget(self.widget)
        self._configure(self.widget)
