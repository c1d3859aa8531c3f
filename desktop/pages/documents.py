"""Documents: drag files or folders in, see each one's status, remove, re-scan."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
)

from doctune.desktop.jobs import PARTIAL, SUCCEEDED
from doctune.desktop.pages.base import Page
from doctune.desktop.widgets import JobProgress, run_cli_json

COLUMNS = ("Name", "Type", "Pages", "Chunks", "Status", "Problem")
FORMAT_LABELS = {"text": "Text", "markdown": "Markdown", "pdf": "PDF", "docx": "Word", "html": "HTML", "epub": "EPUB"}


def plain_problem(error: str | None, hint: str | None) -> str:
    """``error`` and ``hint`` as two sentences: what went wrong, then what to do."""
    sentences = [text.strip().rstrip(".") for text in (error, hint) if text and text.strip()]
    return " ".join(sentence[0].upper() + sentence[1:] + "." for sentence in sentences)


class DocumentsPage(Page):
    key = "documents"
    title = "Documents"
    summary = ("Drop files or folders here (PDF, Word, Markdown, text, HTML, EPUB). Each file is read, split into "
               "passages and stored in the project. Files that cannot be read are listed with the reason.")

    def __init__(self, runner, parent=None) -> None:
        super().__init__(runner, parent)
        self.setAcceptDrops(True)
        self.rows: list[dict] = []
        self.index_job = None
        buttons = QHBoxLayout()
        self.add_files_button = QPushButton("Add files…")
        self.add_folder_button = QPushButton("Add folder…")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected documents from the project (your files are not touched)")
        self.restore_button = QPushButton("Restore removed")
        self.restore_button.setToolTip("Add back the documents removed since DocTune was opened")
        self.restore_button.setEnabled(False)
        self.removed: list[str] = []  # paths removed in this session, in order, for Restore removed
        self.rescan_button = QPushButton("Re-scan")
        self.rescan_button.setToolTip("Read every document again and pick up changed files (F5)")
        for button in (self.add_files_button, self.add_folder_button, self.remove_button, self.restore_button,
                       self.rescan_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.body.addLayout(buttons)
        self.progress = JobProgress()
        self.body.addWidget(self.progress)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.table.setMinimumHeight(280)
        self.body.addWidget(self.table, 1)
        self.totals = QLabel("")
        self.body.addWidget(self.totals)
        self.add_files_button.clicked.connect(self.choose_files)
        self.add_folder_button.clicked.connect(self.choose_folder)
        self.remove_button.clicked.connect(self.remove_selected)
        self.restore_button.clicked.connect(self.restore_removed)
        self.rescan_button.clicked.connect(self.rescan)
        QShortcut(QKeySequence.StandardKey.Delete, self.table, self.remove_selected)
        QShortcut(QKeySequence(Qt.Key.Key_F5), self, self.rescan)

    # ----- drag and drop ---------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            self.add_paths(paths)
            event.acceptProposedAction()

    # ----- actions -------------------------------------------------------------------
    def choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add documents", str(Path.home()),
                                                "Documents (*.pdf *.docx *.md *.markdown *.txt *.html *.htm *.epub);;All files (*)")
        if files:
            self.add_paths(files)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of documents", str(Path.home()))
        if folder:
            self.add_paths([folder])

    def add_paths(self, paths: list[str]):
        title = f"Add {Path(paths[0]).name}" if len(paths) == 1 else f"Add {len(paths)} files and folders"
        job = self.start_job(title, ["add", *paths])
        self.progress.follow(job)
        job.finished.connect(self._index_after)
        return job

    def _index_after(self, state: str) -> None:
        """Documents changed: bring the search index up to date (incremental; Compare and Evaluate use it)."""
        if state in (SUCCEEDED, PARTIAL):
            self.index_job = self.start_job("Update the search index", ["index"])
            self.progress.follow(self.index_job)

    def remove_selected(self):
        """Remove the selected documents after asking; the selection is cleared so a second Delete removes nothing."""
        chosen = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        if not chosen:
            return None
        paths = [self.rows[row]["path"] for row in chosen]
        self.table.clearSelection()
        if not self.confirm_removal([self.rows[row]["name"] for row in chosen]):
            return None
        job = self.start_job(f"Remove {len(paths)} document(s)", ["remove", *paths])
        self.progress.follow(job)
        job.finished.connect(lambda state: self._removed(paths, state))
        return job

    def confirm_removal(self, names: list[str]) -> bool:
        listed = "\n".join(f"• {name}" for name in names[:12]) + (f"\n… and {len(names) - 12} more" if len(names) > 12 else "")
        answer = QMessageBox.question(
            self, "Remove documents", f"Remove {len(names)} document(s) from the project?\n\n{listed}\n\n"
            "Your files stay where they are. Restore removed adds them back until you close DocTune.")
        return answer == QMessageBox.StandardButton.Yes

    def _removed(self, paths: list[str], state: str) -> None:
        if state in (SUCCEEDED, PARTIAL):
            self.removed += [path for path in paths if path not in self.removed]
            self.restore_button.setEnabled(any(Path(path).exists() for path in self.removed))
            self.restore_button.setText(f"Restore removed ({len(self.removed)})")
        self._index_after(state)

    def restore_removed(self):
        """Add back the documents removed in this session (those whose files still exist)."""
        paths = [path for path in self.removed if Path(path).exists()]
        self.removed = []
        self.restore_button.setEnabled(False)
        self.restore_button.setText("Restore removed")
        return self.add_paths(paths) if paths else None

    def rescan(self):
        paths = [row["path"] for row in self.rows if Path(row["path"]).exists()]
        if not paths:
            return None
        return self.add_paths(paths)

    # ----- table ---------------------------------------------------------------------
    def refresh(self) -> None:
        if self.project is None:
            return
        if not self.rows:
            self.totals.setText("Reading the project's documents…")
        run_cli_json(self, ["status", "--json", "-p", str(self.project)], self._show_status)

    def _show_status(self, data: dict | None, error: str) -> None:
        if data is None:
            self.totals.setText(f"Could not read the project's documents: {error.splitlines()[-1] if error else 'unknown error'}")
            return
        self.rows = data["documents"]
        self.table.clearSelection()  # row numbers now name other documents
        self._fill_table()
        failed = sum(1 for doc in self.rows if doc["status"] != "ok")
        self.totals.setText(f"{len(self.rows) - failed} document(s) ready, {failed} with problems, "
                            f"{data['chunks']} passages." if self.rows else
                            "No documents yet: drop files or folders here, or use Add files….")

    def _fill_table(self) -> None:
        """Put the rows in the table with column sizing paused (sizing per cell made a 60-row refresh stall ~0.5 s)."""
        header = self.table.horizontalHeader()
        self.table.setUpdatesEnabled(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        try:
            self.table.setRowCount(len(self.rows))
            for row, doc in enumerate(self.rows):
                self._fill_row(row, doc)
        finally:
            header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
            header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
            self.table.resizeRowsToContents()
            self.table.setUpdatesEnabled(True)

    def _fill_row(self, row: int, doc: dict) -> None:
        ok = doc["status"] == "ok"
        problem = "" if ok else plain_problem(doc.get("error"), doc.get("hint"))
        values = (doc["name"], FORMAT_LABELS.get(doc.get("format") or "", (doc.get("format") or "").upper()), "" if doc.get("pages") is None else str(doc["pages"]),
                  str(doc.get("chunks") or 0), "Ready" if ok else "Could not read", problem)
        for column, value in enumerate(values):
            item = QTableWidgetItem(value)
            item.setToolTip(doc["path"] if column == 0 else value)
            if column == 4 and not ok:
                item.setForeground(Qt.GlobalColor.red)
            if column in (2, 3):
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, column, item)
