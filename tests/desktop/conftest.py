"""Desktop fixtures: a window with private settings, real projects, screenshots, waiting for jobs."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from qt_helpers import SAMPLE_DOCS


@pytest.fixture
def screenshot_dir(tmp_path) -> Path:
    """Where page screenshots go: ``$DOCTUNE_SCREENSHOTS`` if set (to refresh the README's), else a temp folder."""
    folder = Path(os.environ.get("DOCTUNE_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def settings(tmp_path):
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def make_window(qtbot, settings):
    """``make_window()`` → a shown main window; closed at the end, its jobs cancelled without asking."""
    from PySide6.QtWidgets import QApplication

    from doctune.desktop.theme import apply_theme
    from doctune.desktop.window import MainWindow

    apply_theme(QApplication.instance())
    windows = []

    def make(chosen_settings=None):
        window = MainWindow(chosen_settings or settings)  # not qtbot.addWidget: its teardown closes first and
        # would meet the "jobs still running" question; this fixture cancels the jobs, then closes
        window.resize(1280, 860)
        window.show()
        qtbot.waitExposed(window)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.runner.cancel_all(wait_ms=20000)
        window.close()


@pytest.fixture
def documents(tmp_path) -> Path:
    """Four sample documents and one that cannot be read (a PDF that is not a PDF)."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for source in sorted(SAMPLE_DOCS.glob("*.md"))[:4]:
        shutil.copy(source, folder / source.name)
    (folder / "broken.pdf").write_bytes(b"this is not a PDF at all\n" * 20)
    return folder
