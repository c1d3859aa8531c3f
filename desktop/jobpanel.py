"""The job panel: running and past jobs, each with its log; cancel the selected one."""
from __future__ import annotations

import time

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from doctune.desktop.jobs import CANCELLED, FAILED, PARTIAL, RUNNING, SUCCEEDED, Job, JobRunner

STATE_MARKS = {RUNNING: "⟳", SUCCEEDED: "✓", PARTIAL: "⚠", FAILED: "✗", CANCELLED: "■"}


class JobPanel(QWidget):
    def __init__(self, runner: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.list = QListWidget()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        self.cancel_button = QPushButton("Cancel job")
        self.cancel_button.setEnabled(False)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.list)
        buttons = QHBoxLayout()
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        left_layout.addLayout(buttons)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.log)
        splitter.setSizes([320, 680])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)
        runner.job_added.connect(self._add)
        runner.job_changed.connect(self._update)
        self.list.currentItemChanged.connect(lambda *_: self._show_selected())
        self.cancel_button.clicked.connect(self._cancel_selected)

    def _item_for(self, job: Job) -> QListWidgetItem | None:
        for row in range(self.list.count()):
            if self.list.item(row).data(Qt.ItemDataRole.UserRole) is job:
                return self.list.item(row)
        return None

    def _label(self, job: Job) -> str:
        record = job.record
        seconds = (record.ended or time.time()) - record.started
        return f"{STATE_MARKS.get(record.state, '?')} {record.title} — {record.state} ({seconds:.0f} s)"

    def _add(self, job: Job) -> None:
        item = QListWidgetItem(self._label(job))
        item.setData(Qt.ItemDataRole.UserRole, job)
        self.list.insertItem(0, item)
        self.list.setCurrentItem(item)
        job.log_line.connect(lambda line, job=job: self._append(job, line))

    def _update(self, job: Job) -> None:
        item = self._item_for(job)
        if item is not None:
            item.setText(self._label(job))
            item.setToolTip(job.record.message)
            if job.record.state == FAILED:
                item.setForeground(Qt.GlobalColor.red)
        if self.selected() is job:
            self.cancel_button.setEnabled(job.running)

    def _append(self, job: Job, line: str) -> None:
        if self.selected() is job:
            self.log.appendPlainText(line)

    def selected(self) -> Job | None:
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def _show_selected(self) -> None:
        job = self.selected()
        self.log.setPlainText("\n".join(job.record.log) if job else "")
        self.cancel_button.setEnabled(bool(job and job.running))

    def _cancel_selected(self) -> None:
        job = self.selected()
        if job is not None:
            job.cancel()
