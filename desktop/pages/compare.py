"""Compare: one question broadcast to two or three systems, answers streaming side by side."""
from __future__ import annotations

import html
import time
from pathlib import Path

from PySide6.QtCore import QThreadPool, QUrl
from PySide6.QtGui import QKeySequence, QShortcut, QTextCursor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from doctune.core.evaluate.verdict import SYSTEM_LABELS, system_label
from doctune.desktop.chat import ChatSignals, ChatWorker, PaneSession
from doctune.desktop.jobs import CANCELLED, SUCCEEDED
from doctune.desktop.pages.base import Page
from doctune.desktop.widgets import ElidedLabel, show_error

COMPARED = ("tuned", "base+rag", "tuned+rag")
SYSTEMS = {name: SYSTEM_LABELS[name] for name in COMPARED}  # the names Evaluate's scoreboard uses too


class ChatPane(QFrame):
    """One system: its conversation, live answer, timing and citations."""

    def __init__(self, session: PaneSession, pool: QThreadPool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.session = session
        self.pool = pool
        self.cancel = None
        self.busy = False
        self.started = 0.0
        self.first_piece: float | None = None
        self.pieces = 0
        self.sources: list = []
        self.signals = ChatSignals(self)
        self.signals.opened.connect(self._on_opened)
        self.signals.note.connect(self._on_note)
        self.signals.piece.connect(self._on_piece)
        self.signals.answered.connect(self._on_answered)
        self.signals.failed.connect(self._on_failed)
        self.reference: tuple[str, str] | None = None  # (question, reference answer) of a held-out question
        title = ElidedLabel(system_label(session.system_name))
        font = title.font()
        font.setBold(True)
        title.setFont(font)
        self.view = QTextBrowser()
        self.view.setOpenLinks(False)
        self.view.anchorClicked.connect(self._open_source)
        self.view.setMinimumWidth(120)
        self.stats = QLabel("")
        self.stats.setObjectName("explanation")
        self.stats.setWordWrap(True)  # a long stats line must never widen the pane past the window
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.stats)

    def ask(self, question: str, reference: str | None = None) -> None:
        """Answer ``question``; with the ``reference`` answer of a held-out question, mark the answer against it."""
        from doctune.core.events import CancelToken

        self.reference = (question, reference) if reference else None
        self.busy = True
        self.cancel = CancelToken()
        self.started = time.perf_counter()
        self.first_piece = None
        self.pieces = 0
        self.stats.setText("loading the model…" if self.session.system is None else "thinking…")
        cursor = self.view.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertHtml(f"<p><b>You:</b> {html.escape(question)}</p><p><b>Answer:</b> ")
        self.view.setTextCursor(cursor)
        self.pool.start(ChatWorker(self.session, question, self.signals, self.cancel))

    def stop(self) -> None:
        if self.cancel is not None:
            self.cancel.cancel()

    def wait_for_base_model(self) -> None:
        """Busy until the base model's GGUF is exported (by a job of the page); then ``ask`` or ``_on_failed``."""
        self.busy = True
        self.cancel = None
        self.stats.setText("exporting the base model (once)…")
        self._on_note("Exporting the base model to GGUF first (once; it is kept for every later question)…")

    def _on_opened(self) -> None:
        self.started = time.perf_counter()
        self.stats.setText("thinking…")

    def _on_note(self, message: str) -> None:
        cursor = self.view.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertHtml(f"<i style='color:#b9770e'>{html.escape(message)}</i><br>")
        self.view.setTextCursor(cursor)

    def _on_piece(self, piece: str) -> None:
        now = time.perf_counter()
        if self.first_piece is None:
            self.first_piece = now - self.started
        self.pieces += 1
        cursor = self.view.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(piece)
        self.view.ensureCursorVisible()
        self.stats.setText(f"first token {self.first_piece:.2f} s · streaming…")

    def _on_answered(self, answer) -> None:
        self.busy = False
        if answer is None:
            return
        self.sources = list(answer.sources)
        links = [f"<a href='source:{number}'>[{number}] {html.escape(hit.label)}</a>"
                 for number, hit in enumerate(self.sources, 1)]
        cursor = self.view.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        verdict = self._verdict(answer.text)
        if verdict:
            cursor.insertHtml("<br>" + verdict)
        if links:
            cursor.insertHtml("<br><small>Sources: " + " · ".join(links) + "</small>")
        cursor.insertHtml("<hr>")
        self.stats.setText(answer_stats(answer))

    def _verdict(self, text: str) -> str:
        """✓ / ✗ against the reference answer of a held-out question (HTML), or nothing."""
        from doctune.core.evaluate.scoring import agrees_with_reference

        if self.reference is None:
            return ""
        agrees, f1 = agrees_with_reference(text, self.reference[1])
        if agrees:
            return f"<b style='color:#1e8449'>✓ agrees with the reference answer</b> <small>(word overlap {f1:.0%})</small>"
        return f"<b style='color:#c0392b'>✗ differs from the reference answer</b> <small>(word overlap {f1:.0%})</small>"

    def _on_failed(self, message: str, detail: str) -> None:
        self.busy = False
        cursor = self.view.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertHtml(f"<br><span style='color:#c0392b'>{html.escape(message)}</span><hr>")
        self.stats.setText(message if len(message) < 120 else "failed — see the message above")
        if detail and message != "Stopped.":
            self.view.setToolTip(detail[-2000:])

    def _open_source(self, url: QUrl) -> None:
        number = int(url.toString().split(":", 1)[1])
        hit = self.sources[number - 1]
        dialog = QDialog(self)
        dialog.setWindowTitle(f"[{number}] {hit.label}")
        layout = QVBoxLayout(dialog)
        layout.addWidget(QLabel(f"<b>{html.escape(hit.doc_title or '')}</b> {html.escape(hit.pages)}<br>"
                                f"<small>{html.escape(hit.doc_path or '')}</small>"))
        text = QPlainTextEdit(hit.text)
        text.setReadOnly(True)
        layout.addWidget(text)
        dialog.resize(620, 420)
        dialog.open()


def normalise_question(text: str) -> str:
    """Case and spacing do not make a typed question a different one."""
    return " ".join(text.lower().split())


def answer_stats(answer) -> str:
    """One compact line: time to first token, speed, answer and context tokens, sources cited."""
    parts = [f"time to first token {answer.ttft_s:.2f} s" if answer.ttft_s is not None else "no tokens"]
    if answer.tokens_per_s:
        parts.append(f"{answer.tokens_per_s:.0f} tokens/s")
    parts.append(f"{answer.completion_tokens} tokens")
    parts.append(f"{answer.context_tokens} context tokens")
    if answer.sources:
        parts.append(f"{len(answer.cited)} of {len(answer.sources)} sources cited")
    return " · ".join(parts)


class ComparePage(Page):
    key = "compare"
    title = "Compare"
    summary = ("Ask one question; each system answers at the same time. The retrieval panes list the passages "
               "they read — click one to see it. Each pane keeps its own conversation.")

    def __init__(self, runner, parent=None) -> None:
        super().__init__(runner, parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(len(SYSTEMS))
        choices = QHBoxLayout()
        self.system_boxes = {name: QCheckBox(label) for name, label in SYSTEMS.items()}
        for name, box in self.system_boxes.items():
            box.setChecked(name != "tuned+rag")
            box.toggled.connect(self._rebuild_panes)
            choices.addWidget(box)
        self.model_file_button = QPushButton("Add a model file…")
        self.model_file_button.setToolTip("Compare any GGUF model file as one more pane")
        self.model_file_button.clicked.connect(self.choose_model_file)
        choices.addStretch(1)
        choices.addWidget(self.model_file_button)
        self.body.addLayout(choices)
        self.held_out_questions: dict[str, tuple[str, str]] = {}  # normalised question → (question, reference)
        self.held_out = QComboBox()
        self.held_out.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.held_out.setMinimumContentsLength(20)
        self.held_out.setToolTip("Ask one of the held-out questions (never trained on): each answer is then marked "
                                 "against its reference answer")
        self.held_out.activated.connect(self._choose_held_out)
        self.reference_label = QLabel("")
        self.reference_label.setWordWrap(True)
        self.reference_label.setObjectName("explanation")
        self.reference_label.setVisible(False)
        self.model_files: list[str] = []
        self.panes_row = QHBoxLayout()
        self.body.addLayout(self.panes_row, 1)
        ask_row = QHBoxLayout()
        self.question = QLineEdit()
        self.question.setPlaceholderText("Ask something your documents answer…  (Enter to send, Esc to stop)")
        self.send_button = QPushButton("Ask")
        self.stop_button = QPushButton("Stop")
        self.clear_button = QPushButton("New conversation")
        for widget in (self.question, self.held_out, self.send_button, self.stop_button, self.clear_button):
            ask_row.addWidget(widget, 3 if widget is self.question else 1 if widget is self.held_out else 0)
        self.body.addWidget(self.reference_label)
        self.body.addLayout(ask_row)
        self.panes: list[ChatPane] = []
        self.base_job = None  # the job exporting the base model for the base panes, while it runs
        self.question.returnPressed.connect(self.ask)
        self.send_button.clicked.connect(self.ask)
        self.stop_button.clicked.connect(self.stop)
        self.clear_button.clicked.connect(self._rebuild_panes)
        QShortcut(QKeySequence("Esc"), self, self.stop)

    def set_project(self, root) -> None:
        super().set_project(root)
        self._rebuild_panes()

    def refresh(self) -> None:
        """The held-out questions of the project, offered in the question picker."""
        from doctune.core.evaluate.scoring import reference_words
        from doctune.core.items import load_eval_questions
        from doctune.core.project import Project

        try:
            questions = load_eval_questions(Project.open(self.project)) if self.project is not None else []
        except Exception:  # noqa: BLE001 — an unreadable file only leaves the picker empty; Evaluate explains it
            questions = []
        self.held_out_questions = {
            normalise_question(q.question): (q.question, reference_words(q.kind, q.answer, q.reference))
            for q in questions}
        self.held_out.clear()
        self.held_out.addItem(f"Held-out questions ({len(questions)})…" if questions else "No held-out questions yet")
        for question, _reference in self.held_out_questions.values():
            self.held_out.addItem(question)
        self.held_out.setEnabled(bool(questions))

    def _choose_held_out(self, index: int) -> None:
        if index > 0:
            self.question.setText(self.held_out.itemText(index))
            self.held_out.setCurrentIndex(0)
            self.question.setFocus()

    def chosen_systems(self) -> list[str]:
        return [name for name, box in self.system_boxes.items() if box.isChecked()] + self.model_files

    def choose_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a GGUF model to compare", str(Path.home()),
                                              "GGUF models (*.gguf)")
        if path:
            self.add_model_file(path)

    def add_model_file(self, path: str | Path, rag: bool = False) -> None:
        self.model_files.append(str(path) + ("+rag" if rag else ""))
        self._rebuild_panes()

    def set_systems(self, names: list[str]) -> None:
        """Show exactly these systems (named ones and GGUF paths), one pane each."""
        self.model_files = [name for name in names if name not in SYSTEMS]
        for name, box in self.system_boxes.items():
            box.blockSignals(True)
            box.setChecked(name in names)
            box.blockSignals(False)
        self._rebuild_panes()

    def _rebuild_panes(self) -> None:
        self.stop()
        for pane in self.panes:
            if not pane.busy:
                pane.session.close()
            pane.setParent(None)
            pane.deleteLater()
        self.panes = []
        if self.project is None:
            return
        for name in self.chosen_systems():
            pane = ChatPane(PaneSession(self.project, name), self.pool)
            pane.setMinimumHeight(300)
            self.panes_row.addWidget(pane, 1)
            self.panes.append(pane)

    def ask(self) -> None:
        question = self.question.text().strip()
        if not question:
            return
        if any(pane.busy for pane in self.panes):
            show_error(self, "The previous question is still being answered; stop it first (Esc).")
            return
        self.question.clear()
        question, reference = self.held_out_questions.get(normalise_question(question), (question, None))
        self.reference_label.setVisible(reference is not None)
        if reference is not None:
            self.reference_label.setText(f"<b>Held-out question</b> (never trained on) · reference answer: "
                                         f"{html.escape(reference)}")
        waiting = self._panes_waiting_for_base_model()
        if waiting:
            self._export_base_model_then_ask(waiting, question, reference)
        for pane in self.panes:
            if pane not in waiting:
                pane.ask(question, reference)

    def _panes_waiting_for_base_model(self) -> list[ChatPane]:
        """The panes of base systems, when the base model has no GGUF yet (exporting it is a step of its own)."""
        from doctune.core.chat import uses_base
        from doctune.core.export import find_base_gguf

        base_panes = [pane for pane in self.panes if uses_base(pane.session.system_name)]
        if not base_panes:
            return []
        project = self.open_config()
        return [] if find_base_gguf(project, project.config.rag.gguf_format) is not None else base_panes

    def _export_base_model_then_ask(self, panes: list[ChatPane], question: str, reference: str | None) -> None:
        for pane in panes:
            pane.wait_for_base_model()
        self.base_job = job = self.start_job("Export the base model", ["export", "--base"])

        def finished(state: str) -> None:
            self.base_job = None
            for pane in panes:
                if pane not in self.panes:  # the panes were rebuilt meanwhile
                    continue
                if state == SUCCEEDED:
                    pane.ask(question, reference)
                elif state == CANCELLED:
                    pane._on_failed("Stopped.", "")
                else:
                    pane._on_failed("The base model could not be exported to GGUF; the Jobs panel (Ctrl+J) shows "
                                    "why.", "\n".join(job.record.log[-20:]))

        job.finished.connect(finished)

    def stop(self) -> None:
        if self.base_job is not None:
            self.base_job.cancel()
        for pane in self.panes:
            pane.stop()

    def close_resources(self) -> None:
        self.stop()
        self.pool.waitForDone(10000)
        for pane in self.panes:
            pane.session.close()
