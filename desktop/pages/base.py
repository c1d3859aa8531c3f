"""What every page has: the job runner, the open project, and a way to say its step changed."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QScrollArea, QVBoxLayout, QWidget

from doctune.desktop.jobs import Job, JobRunner
from doctune.desktop.widgets import explanation, heading


class Page(QWidget):
    """A step's page. Subclasses fill ``self.body`` and implement ``refresh``."""

    key = ""
    title = ""
    summary = ""
    changed = Signal()  # the step's files changed: the window recomputes step states

    def __init__(self, runner: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.project: Path | None = None
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        # Not a Tab stop of its own: it showed no focus ring, so the first Tab after the sidebar seemed lost. It still
        # scrolls to whichever of its widgets takes the focus.
        scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        content = QWidget()
        scroll.setWidget(content)
        outer.addWidget(scroll)
        self.body = QVBoxLayout(content)
        self.body.setContentsMargins(24, 18, 24, 18)
        self.body.setSpacing(12)
        self.body.addWidget(heading(self.title))
        self.body.addWidget(explanation(self.summary))

    def set_project(self, root: Path | None) -> None:
        self.project = root
        if root is not None:
            self.refresh()

    def refresh(self) -> None:
        """Reload what the page shows from the project folder."""

    def close_resources(self) -> None:
        """Release what the page holds open (models, workers) before the window closes."""

    def start_job(self, title: str, args: list[str]) -> Job:
        job = self.runner.start(title, args, self.project)
        job.finished.connect(lambda _state: (self.refresh(), self.changed.emit()))
        return job

    def open_config(self):
        from doctune.core.project import Project

        return Project.open(self.project)
