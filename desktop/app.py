"""Start the window: ``doctune gui`` (and ``python3 bootstrap.py app``) land here.

Nothing heavy is imported on the way to the first paint: torch, transformers and
llama.cpp load only in job processes or when a chat pane first answers.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QSettings, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from doctune.desktop.theme import apply_theme
from doctune.desktop.window import MainWindow

ORGANISATION, APPLICATION = "DocTune", "DocTune"
PAGE_KEYS = ("documents", "teacher", "synthesize", "train", "export", "compare", "evaluate")
HEAVY_MODULES = ("torch", "transformers", "llama_cpp", "sentence_transformers", "lancedb", "peft")
FIRST_PAINT_ENV = "DOCTUNE_EXIT_AFTER_FIRST_PAINT"
STARTED = time.perf_counter()


class FirstPaintReporter(QObject):
    """With ``DOCTUNE_EXIT_AFTER_FIRST_PAINT=1``: print one JSON line at the window's first paint, then quit.

    Used by the start-up test, the benchmark and the packaged-app smoke test.
    """

    def eventFilter(self, watched, event) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.Paint:
            watched.removeEventFilter(self)
            report = {"first_paint_s": round(time.perf_counter() - STARTED, 3),
                      "heavy_modules": [name for name in HEAVY_MODULES if name in sys.modules]}
            print(json.dumps(report), flush=True)
            QTimer.singleShot(0, watched.close)
        return False


def icon_path() -> Path:
    from doctune.core.resources import resource_path

    return resource_path("icons/doctune.svg")


def create_window(project: str | None = None, page: str | None = None, settings: QSettings | None = None) -> MainWindow:
    """The main window, with the given (or last) project and page open."""
    settings = settings or QSettings(ORGANISATION, APPLICATION)
    window = MainWindow(settings)
    if icon_path().exists():
        window.setWindowIcon(QIcon(str(icon_path())))
    chosen = project or settings.value("last_project")
    if chosen and (Path(chosen) / "doctune.toml").exists():
        window.open_project(Path(chosen))
        if page in PAGE_KEYS:
            window.show_page(PAGE_KEYS.index(page))
    return window


def missing_system_library(environ: dict[str, str] | None = None, find=None) -> str | None:
    """What to install when Qt's X11 plugin would fail for a missing system library (Qt 6.5+ needs
    libxcb-cursor; without it Qt aborts with a raw plugin error), else None."""
    import ctypes.util

    environ = os.environ if environ is None else environ
    platform_name = environ.get("QT_QPA_PLATFORM", "")
    uses_x11 = platform_name.startswith("xcb") or (not platform_name and not environ.get("WAYLAND_DISPLAY"))
    if not sys.platform.startswith("linux") or not uses_x11:
        return None
    if (find or ctypes.util.find_library)("xcb-cursor"):
        return None
    return ("DocTune's window needs the system library libxcb-cursor, which is not installed. Install it with "
            "'sudo apt install libxcb-cursor0' (Debian, Ubuntu), 'sudo dnf install xcb-util-cursor' (Fedora) or "
            "'sudo pacman -S xcb-util-cursor' (Arch), then start DocTune again.")


def run(project: str | None = None, page: str | None = None, argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C in the terminal closes the window
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    missing = missing_system_library()
    if missing and QApplication.instance() is None:
        print(missing, file=sys.stderr)
        return 1
    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    app.setDesktopFileName("doctune")
    apply_theme(app)
    window = create_window(project, page)
    if os.environ.get(FIRST_PAINT_ENV) == "1":
        reporter = FirstPaintReporter(window)
        window.installEventFilter(reporter)
    window.show()
    return app.exec()
