"""The main window: pages in a sidebar in journey order, the job panel, settings that persist."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QProcess, QSettings, QStandardPaths, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtNetwork import QTcpSocket
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from doctune.desktop.jobpanel import JobPanel
from doctune.desktop.jobs import SUCCEEDED, JobRunner
from doctune.desktop.pages.compare import ComparePage
from doctune.desktop.pages.documents import DocumentsPage
from doctune.desktop.pages.evaluate import EvaluatePage
from doctune.desktop.pages.export import ExportPage
from doctune.desktop.pages.synthesize import SynthesizePage
from doctune.desktop.pages.teacher import TeacherPage
from doctune.desktop.pages.train import TrainPage
from doctune.desktop.plotlib import plot_library
from doctune.desktop.state import DONE, STALE, project_states
from doctune.desktop.welcome import WelcomePage
from doctune.desktop.widgets import show_error

PAGE_CLASSES = (DocumentsPage, TeacherPage, SynthesizePage, TrainPage, ExportPage, ComparePage, EvaluatePage)
STATE_MARKS = {DONE: "●", STALE: "◐"}
MAX_RECENT = 8
HUB_PROBE_TIMEOUT_MS = 5000
PRELOAD_AFTER_PAINT_MS = 250  # pyqtgraph starts importing (off the GUI thread) this long after the first paint


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings, runner: JobRunner | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.runner = runner or JobRunner(self)
        self.project: Path | None = None
        self.setWindowTitle("DocTune")
        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.stack = QStackedWidget()
        self.welcome = WelcomePage(self.recent_projects())
        self.stack.addWidget(self.welcome)
        self.pages = [cls(self.runner) for cls in PAGE_CLASSES]
        for page in self.pages:
            self.stack.addWidget(page)
            item = QListWidgetItem(page.title)
            item.setData(Qt.ItemDataRole.UserRole, page.key)
            self.sidebar.addItem(item)
            page.changed.connect(self.refresh_states)
        self.page("train").remember_choices(settings)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        side = QWidget()
        side.setObjectName("side")
        side.setFixedWidth(210)
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 8)
        side_layout.addWidget(self.sidebar, 1)
        legend = QLabel("●  done   ◐  stale   ○  to do")
        legend.setObjectName("explanation")
        legend.setAlignment(Qt.AlignmentFlag.AlignCenter)
        side_layout.addWidget(legend)
        layout.addWidget(side)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        self.job_panel = JobPanel(self.runner)
        self.jobs_dock = QDockWidget("Jobs", self)
        self.jobs_dock.setObjectName("jobs")
        self.jobs_dock.setWidget(self.job_panel)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.jobs_dock)
        self.jobs_dock.hide()  # shown when the first job starts (Ctrl+J toggles it)
        self.sidebar.currentRowChanged.connect(self._show_page)
        self.welcome.project_chosen.connect(self.open_project)
        self.welcome.sample_requested.connect(self.create_sample)
        self.runner.job_added.connect(self._on_job_added)
        self._build_menus()
        self.resize(1280, 860)
        geometry = settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        self.sidebar.setEnabled(False)
        self.statusBar().showMessage("Open or create a project to begin.")
        self.painted = False  # set at the first paint event
        self.stopping_jobs = False  # closing: jobs were asked to stop, the window closes when they have
        self.jobs_panel_offered = False

    def paintEvent(self, event) -> None:  # noqa: N802
        super().paintEvent(event)
        if not self.painted:
            self.painted = True
            QTimer.singleShot(PRELOAD_AFTER_PAINT_MS, plot_library().preload)

    # ----- menus and shortcuts --------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        for text, shortcut, slot in (
            ("&New project…", QKeySequence.StandardKey.New, self.welcome.new_project),
            ("&Open project…", QKeySequence.StandardKey.Open, self.welcome.open_project),
            ("&Welcome", QKeySequence("Ctrl+0"), self.show_welcome),
            ("&Quit", QKeySequence.StandardKey.Quit, self.close),
        ):
            action = QAction(text, self)
            action.setShortcut(shortcut)
            action.triggered.connect(slot)
            file_menu.addAction(action)
        go_menu = self.menuBar().addMenu("&Go")
        for index, page in enumerate(self.pages):
            action = QAction(page.title, self)
            action.setShortcut(QKeySequence(f"Ctrl+{index + 1}"))
            action.triggered.connect(lambda _checked=False, index=index: self.show_page(index))
            go_menu.addAction(action)
            self.addAction(action)
        view_menu = self.menuBar().addMenu("&View")
        toggle = self.jobs_dock.toggleViewAction()
        toggle.setShortcut(QKeySequence("Ctrl+J"))
        view_menu.addAction(toggle)
        refresh = QAction("&Refresh", self)
        refresh.setShortcut(QKeySequence.StandardKey.Refresh)
        refresh.triggered.connect(self.refresh_current)
        view_menu.addAction(refresh)

    # ----- projects -------------------------------------------------------------------
    def recent_projects(self) -> list[str]:
        recent = self.settings.value("recent", []) or []
        recent = [recent] if isinstance(recent, str) else list(recent)
        return [folder for folder in recent if (Path(folder) / "doctune.toml").exists()]

    def open_project(self, folder: Path) -> None:
        folder = Path(folder).resolve()
        if not (folder / "doctune.toml").exists():
            show_error(self, f"{folder} is not a DocTune project (it has no doctune.toml).")
            return
        self.project = folder
        recent = [str(folder)] + [f for f in self.recent_projects() if f != str(folder)]
        self.settings.setValue("recent", recent[:MAX_RECENT])
        self.settings.setValue("last_project", str(folder))
        self.setWindowTitle(f"DocTune — {folder.name}")
        self.statusBar().showMessage(str(folder))
        self.sidebar.setEnabled(True)
        for page in self.pages:
            try:
                page.set_project(folder)
            except Exception as exc:  # noqa: BLE001 — a broken file must not stop the window from opening
                from doctune.core.errors import exception_window_text

                show_error(self, f"The {page.title} page could not read the project: {exception_window_text(exc)}")
        self.refresh_states()
        self.show_page(int(self.settings.value("last_page", 0) or 0))

    def create_sample(self, offline_check: bool) -> None:
        if offline_check:
            self._start_sample(True)
            return
        probe = QTcpSocket(self)
        answered = []

        def answer(reachable: bool) -> None:
            if answered:
                return
            answered.append(reachable)
            probe.abort()
            if reachable:
                self._start_sample(False)
            else:
                self._offer_offline_check()

        probe.connected.connect(lambda: answer(True))
        probe.errorOccurred.connect(lambda _error: answer(False))
        QTimer.singleShot(HUB_PROBE_TIMEOUT_MS, lambda: answer(False))  # a network that drops packets never errors
        probe.connectToHost("huggingface.co", 443)

    def _offer_offline_check(self) -> None:
        answer = QMessageBox.question(
            self, "DocTune", "Hugging Face cannot be reached, so the sample's models cannot be downloaded.\n\n"
            "Run the offline pipeline check instead? A small model learns a made-up world on this computer (about "
            "25 minutes on two processor cores, once), then DocTune teaches it twelve new documents and compares it "
            "with retrieval.")
        if answer == QMessageBox.StandardButton.Yes:
            self._start_sample(True)

    def _start_sample(self, offline_check: bool) -> None:
        base = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation))
        folder = base / ("offline-check" if offline_check else "sample")
        if (folder / "doctune.toml").exists():
            self.open_project(folder)
            return
        folder = self._ask_sample_folder(folder, offline_check)
        if folder is None:
            return
        if (folder / "doctune.toml").exists():
            self.open_project(folder)
            return
        args = ["sample", str(folder)] + (["--offline-check"] if offline_check else [])
        job = self.runner.start("Create the offline check project" if offline_check else "Create the sample project",
                                args, None)
        job.finished.connect(lambda state: self.open_project(folder) if state == SUCCEEDED else
                             show_error(self, job.record.message, "\n".join(job.record.log[-40:])))

    def _ask_sample_folder(self, default: Path, offline_check: bool) -> Path | None:
        """Where to create the sample project: ``default`` unless the user picks another folder (None: cancelled)."""
        what = "offline check" if offline_check else "sample"
        box = QMessageBox(QMessageBox.Icon.Question, "DocTune",
                          f"Create the {what} project in this folder?\n\n{default}", parent=self)
        here = box.addButton("Create here", QMessageBox.ButtonRole.AcceptRole)
        elsewhere = box.addButton("Choose another folder…", QMessageBox.ButtonRole.ActionRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(here)
        self.sample_question = box  # reachable by tests
        box.exec()
        if box.clickedButton() is here:
            return default
        if box.clickedButton() is not elsewhere:
            return None
        parent = QFileDialog.getExistingDirectory(self, f"Choose where to create the {what} project", str(Path.home()))
        return Path(parent) / f"DocTune {what}" if parent else None

    def _on_job_added(self, job) -> None:
        self._show_jobs()
        job.finished.connect(lambda _state: self.refresh_current())  # whatever page is open shows the new state

    def _show_jobs(self) -> None:
        """Open the Jobs panel for the first job of the session; after that, it stays as the user left it."""
        if self.jobs_panel_offered:
            return
        self.jobs_panel_offered = True
        if not self.jobs_dock.isVisible():
            self.jobs_dock.show()
            self.resizeDocks([self.jobs_dock], [max(160, self.height() // 5)], Qt.Orientation.Vertical)

    # ----- pages ----------------------------------------------------------------------
    def show_welcome(self) -> None:
        self.sidebar.clearSelection()
        self.stack.setCurrentWidget(self.welcome)

    def show_page(self, index: int) -> None:
        if self.project is None:
            return
        index = max(0, min(index, len(self.pages) - 1))
        self.sidebar.setCurrentRow(index)
        self._show_page(index)

    def page(self, key: str):
        return next(page for page in self.pages if page.key == key)

    def _show_page(self, index: int) -> None:
        if index < 0 or self.project is None:
            return
        page = self.pages[index]
        if self.stack.currentWidget() is not page:
            self.stack.setCurrentWidget(page)
            self._refresh_page(page)  # a page shows the project as it is now, not as when it was last open
        self.settings.setValue("last_page", index)

    def refresh_current(self) -> None:
        current = self.stack.currentWidget()
        if current in self.pages and self.project is not None:
            self._refresh_page(current)
        self.refresh_states()

    def _refresh_page(self, page) -> None:
        try:
            page.refresh()
        except Exception as exc:  # noqa: BLE001 — a broken file must not stop the page from opening
            from doctune.core.errors import exception_window_text

            show_error(self, f"The {page.title} page could not read the project: {exception_window_text(exc)}")

    def refresh_states(self) -> None:
        if self.project is None:
            return
        from doctune.core.project import Project
        from doctune.core.records import ProjectLayout, teacher_test_failed

        teacher = Project.open(self.project).config.teacher
        configured = teacher.kind == "lab" or bool(teacher.model_path or teacher.endpoint_urls() or teacher.hf_repo)
        states = project_states(self.project, configured,
                                teacher_test_failed(ProjectLayout(self.project), teacher.model_dump()))
        for row, page in enumerate(self.pages):
            state = states[page.key]
            item = self.sidebar.item(row)
            mark = STATE_MARKS.get(state.state, "○")
            item.setText(f"{mark}  {page.title}")
            item.setToolTip(f"{page.title}: {state.state}" + (f" — {state.detail}" if state.detail else ""))

    # ----- closing --------------------------------------------------------------------
    def _stop_jobs_then_close(self, count: int) -> None:
        """Ask the jobs to stop at their next safe point and close once they have, the window staying responsive
        (waiting for them on the event loop froze it for seconds)."""
        self.stopping_jobs = True
        self.centralWidget().setEnabled(False)
        self.statusBar().showMessage(f"Stopping {count} job(s) at their next safe point (finished work is kept); "
                                     "DocTune closes when they have stopped…")
        self.runner.cancel_all_then(self.close)

    def stop_helper_processes(self) -> None:
        """Quick helpers still running at close (status, device probe): stop them without their callbacks."""
        for process in self.findChildren(QProcess):
            if process.state() != QProcess.ProcessState.NotRunning:
                process.finished.disconnect()
                process.kill()
                process.waitForFinished(2000)

    def closeEvent(self, event) -> None:  # noqa: N802
        running = self.runner.running()
        if running:
            event.ignore()
            if self.stopping_jobs:
                return
            answer = QMessageBox.question(
                self, "DocTune", f"{len(running)} job(s) still running. Stop them (finished work is kept) and quit?")
            if answer != QMessageBox.StandardButton.Yes:
                return
            self._stop_jobs_then_close(len(running))
            return
        for page in self.pages:
            page.close_resources()
        self.stop_helper_processes()
        self.settings.setValue("geometry", self.saveGeometry())
        super().closeEvent(event)
