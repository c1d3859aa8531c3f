"""``doctune gui`` paints its window without loading torch or transformers."""
from __future__ import annotations

import json
import os
import subprocess
import sys


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
