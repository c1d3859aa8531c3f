"""First start: New project, Open project, Recent, Try the sample."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from doctune.desktop.widgets import explanation, heading, show_error

SAMPLE_TEXT = ("<b>Try the sample</b>: twenty short fictional articles and the recommended small models "
               "(student SmolLM2-360M-Instruct ≈ 0.7 GB, teacher Qwen2.5-1.5B-Instruct GGUF ≈ 1.9 GB), "
               "downloaded from Hugging Face on first use.")
OFFLINE_TEXT = ("<b>Offline pipeline check</b>: the whole method on this computer, with no download. A small model "
                "learns a made-up world here (about 25 minutes on two processor cores, once), then DocTune teaches it "
                "twelve new documents and compares it with retrieval. Small models trained in minutes: the point is the comparison.")


def recent_label(folder: str, home: Path | None = None) -> str:
    """A recent project as its folder's name, then where it is, shortened: ``Notes   ~/work/projects``."""
    path = Path(folder)
    home = home or Path.home()
    where = str(path.parent)
    if path.parent == home or home in path.parent.parents:
        where = "~/" + str(path.parent.relative_to(home)) if path.parent != home else "~"
    return f"{path.name}   —   {where}"


class WelcomePage(QWidget):
    """Chooses or creates the project; emits the folder to open."""

    project_chosen = Signal(Path)
    sample_requested = Signal(bool)  # True: the offline pipeline check (the knowledge lab)

    def __init__(self, recent: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(48, 36, 48, 36)
        layout.setSpacing(14)
        layout.addWidget(heading("Welcome to DocTune"))
        layout.addWidget(explanation(
            "Teach a small model on this computer what your documents say, then see side by side — and in "
            "numbers — whether it answers better than searching the documents (RAG). Nothing leaves this "
            "computer unless you choose a remote teacher."))
        row = QHBoxLayout()
        self.new_button = QPushButton("New project…")
        self.open_button = QPushButton("Open project…")
        row.addWidget(self.new_button)
        row.addWidget(self.open_button)
        row.addStretch(1)
        layout.addLayout(row)
        layout.addWidget(explanation("<b>Recent projects</b>"))
        self.recent = QListWidget()
        self.recent.setMaximumHeight(160)
        for folder in recent:
            item = QListWidgetItem(recent_label(folder))
            item.setToolTip(folder)
            item.setData(Qt.ItemDataRole.UserRole, folder)
            self.recent.addItem(item)
        if not recent:
            self.recent.addItem("No recent projects yet.")
            self.recent.setEnabled(False)
        layout.addWidget(self.recent)
        layout.addWidget(explanation(SAMPLE_TEXT))
        self.sample_button = QPushButton("Try the sample")
        layout.addWidget(self.sample_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(explanation(OFFLINE_TEXT))
        self.offline_button = QPushButton("Run the offline pipeline check")
        layout.addWidget(self.offline_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addStretch(1)
        self.new_button.clicked.connect(self.new_project)
        self.open_button.clicked.connect(self.open_project)
        self.recent.itemActivated.connect(lambda item: self._choose(item.data(Qt.ItemDataRole.UserRole)))
        self.sample_button.clicked.connect(lambda: self.sample_requested.emit(False))
        self.offline_button.clicked.connect(lambda: self.sample_requested.emit(True))

    def new_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose an empty folder for the new project", str(Path.home()))
        if not folder:
            return
        name, ok = QInputDialog.getText(self, "New project", "Project name:", text=Path(folder).name)
        if ok:
            self.create(Path(folder), name)

    def create(self, folder: Path, name: str | None = None) -> None:
        from doctune.core.errors import exception_window_text
        from doctune.core.project import Project, ProjectError

        try:
            Project.create(folder, name=name or None)
        except ProjectError as exc:
            show_error(self, exception_window_text(exc))
            return
        self.project_chosen.emit(folder.resolve())

    def open_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a DocTune project folder", str(Path.home()))
        if folder:
            self._choose(folder)

    def _choose(self, folder: str | None) -> None:
        if not folder:
            return
        if not (Path(folder) / "doctune.toml").exists():
            show_error(self, f"{folder} is not a DocTune project (it has no doctune.toml).")
            return
        self.project_chosen.emit(Path(folder))
