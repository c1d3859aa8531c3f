"""``doctune gui`` paints its window without loading torch or transformers; its plot pages open without stalling."""
from __future__ import annotations

import json
import os
import subprocess
import sys

MAX_STALL_MS = 100.0


def first_paint(project_dir, tmp_path) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", DOCTUNE_EXIT_AFTER_FIRST_PAINT="1",
               XDG_CONFIG_HOME=str(tmp_path / "config"))
    result = subprocess.run([sys.executable, "-m", "doctune.core", "gui", "-p", str(project_dir)],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_window_paints_without_torch_or_transformers(project, tmp_path):
    report = first_paint(project.root, tmp_path)
    assert report["heavy_modules"] == []
    assert report["first_paint_s"] < 30


def page_opening(project_dir, settings_file) -> dict:
    """Train and Evaluate opened right after the first paint, in a fresh process (pyqtgraph not yet imported)."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    result = subprocess.run([sys.executable, "-m", "doctune.desktop.responsiveness", str(project_dir), str(settings_file)],
                            capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_opening_the_plot_pages_right_after_start_never_stalls_the_loop(project, tmp_path):
    """pyqtgraph's first import (~0.3–0.5 s, ~0.3 s of stall when it ran on the GUI thread) runs off the GUI thread.

    Other programs share the machine's cores (``longest_blocked_ms`` leaves out the time they had them,
    but not every effect of a loaded machine), so the best of up to three fresh starts counts.
    """
    runs = []
    for attempt in range(3):
        runs.append(page_opening(project.root, tmp_path / f"settings-{attempt}.ini"))
        report = runs[-1]
        assert not report["pyqtgraph_imported_before"]
        assert all(seconds is not None for seconds in report["plots_built_s"].values()), report
        assert report["qobjects_off_gui_thread"] == []  # the background import made no Qt object
        if report["longest_blocked_ms"] < MAX_STALL_MS:
            break
    assert min(run["longest_blocked_ms"] for run in runs) < MAX_STALL_MS, runs


def test_a_missing_xcb_cursor_library_is_named_with_the_package_to_install():
    from doctune.desktop.app import missing_system_library

    absent, present = (lambda name: None), (lambda name: "libxcb-cursor.so.0")
    message = missing_system_library({"DISPLAY": ":0"}, find=absent)
    assert "libxcb-cursor0" in message and "xcb-util-cursor" in message
    assert missing_system_library({"DISPLAY": ":0"}, find=present) is None
    assert missing_system_library({"QT_QPA_PLATFORM": "offscreen"}, find=absent) is None
    assert missing_system_library({"WAYLAND_DISPLAY": "wayland-0"}, find=absent) is None
