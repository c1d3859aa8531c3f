"""The PyInstaller spec builds an app that starts and paints its window (slow)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_packaged_app_starts_to_its_first_paint(tmp_path):
    pytest.importorskip("PyInstaller")
    env = dict(os.environ, DOCTUNE_WINDOW_ONLY="1")
    build = subprocess.run(
        [sys.executable, "-m", "PyInstaller", str(ROOT / "packaging" / "doctune.spec"), "--noconfirm",
         "--distpath", str(tmp_path / "dist"), "--workpath", str(tmp_path / "build")],
        capture_output=True, text=True, timeout=1800, env=env, cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-4000:]
    app = tmp_path / "dist" / "DocTune" / ("DocTune.exe" if os.name == "nt" else "DocTune")
    assert app.exists()
    run_env = dict(os.environ, QT_QPA_PLATFORM="offscreen", DOCTUNE_EXIT_AFTER_FIRST_PAINT="1",
                   XDG_CONFIG_HOME=str(tmp_path / "config"))
    started = subprocess.run([str(app)], capture_output=True, text=True, timeout=120, env=run_env)
    assert started.returncode == 0, started.stderr[-4000:]
    report = json.loads(started.stdout.strip().splitlines()[-1])
    assert report["heavy_modules"] == []
    shutil.rmtree(tmp_path / "build", ignore_errors=True)
