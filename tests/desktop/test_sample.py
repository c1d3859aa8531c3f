"""The offline pipeline check on the knowledge lab (slow: it needs the lab reader).

``doctune sample DIR --offline-check`` then ``doctune run -p DIR``: every step done, and the scoreboard shows what
the method does (the tuned reader above the base reader, closed book); and the same check from the window's
welcome page, through its pages.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from qt_helpers import wait_for_job

from doctune.desktop.jobs import PARTIAL, SUCCEEDED

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]  # the first one also builds the reader (~25 minutes)


def _doctune(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "doctune.core", *args], capture_output=True, text=True,
                          timeout=timeout)


def _latest_scores(folder) -> dict:
    from doctune.core.evaluate.store import open_eval
    from doctune.core.project import Project

    store = open_eval(Project.open(folder))
    summary = store.summary() if store is not None else None
    assert summary is not None, "no evaluation was summarised"
    return {name: figures["mc_likelihood"]["accuracy"] for name, figures in summary["scores"].items()}


def test_offline_check_runs_end_to_end_and_the_tuned_reader_beats_the_base(tmp_path, monkeypatch, lab_reader):
    from doctune.core.project import Project
    from doctune.core.store import list_documents

    monkeypatch.setenv("DOCTUNE_LAB_READER", str(lab_reader))
    folder = tmp_path / "offline-check"
    created = _doctune("sample", str(folder), "--offline-check")
    assert created.returncode == 0, created.stderr[-3000:]
    project = Project.open(folder)
    assert project.config.privacy.offline and project.config.teacher.kind == "lab"
    assert project.config.student.model == str(lab_reader)
    documents = list_documents(project)
    assert len(documents) == 12 and all(doc["status"] == "ok" for doc in documents)

    ran = _doctune("--events", "jsonl", "run", "-p", str(folder))
    assert ran.returncode == 0, ran.stderr[-3000:]
    steps = [json.loads(line) for line in ran.stdout.splitlines() if line.startswith("{")]
    outcomes = next(event for event in reversed(steps) if event.get("event") == "done").get("steps", [])
    assert outcomes and all(step["status"] == "done" for step in outcomes), outcomes
    scores = _latest_scores(folder)
    assert scores["tuned"] >= scores["base"] + 0.10, scores


def test_offline_check_from_the_welcome_page_through_the_pages(qtbot, make_window, tmp_path, monkeypatch,
                                                                lab_reader, screenshot_dir):
    """Welcome → Run the offline pipeline check → each page's main button with the project's own settings →
    the Evaluate page's scoreboard has the tuned reader above the base reader."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QFileDialog

    monkeypatch.setenv("DOCTUNE_LAB_READER", str(lab_reader))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args: str(tmp_path))
    window = make_window()

    def elsewhere() -> None:
        [button] = [b for b in window.sample_question.buttons() if b.text() == "Choose another folder…"]
        button.click()

    QTimer.singleShot(0, elsewhere)
    window.welcome.offline_button.click()
    [job] = window.runner.running()
    assert wait_for_job(qtbot, job, 900) == SUCCEEDED, job.record.log[-20:]
    folder = tmp_path / "DocTune offline check"
    qtbot.waitUntil(lambda: window.project == folder.resolve(), timeout=30_000)

    docs = window.page("documents")
    qtbot.waitUntil(lambda: docs.index_job is not None or docs.table.rowCount() == 12, timeout=30_000)
    if docs.index_job is not None:
        assert wait_for_job(qtbot, docs.index_job, 600) == SUCCEEDED, docs.index_job.record.log[-20:]
    synth = window.page("synthesize")
    synth.refresh()
    assert wait_for_job(qtbot, synth.run_synth(dry_run=False), 900) == SUCCEEDED, synth.progress.job.record.log[-20:]
    synth.eval_button.click()
    assert wait_for_job(qtbot, synth.progress.job, 900) == SUCCEEDED
    train = window.page("train")
    train.refresh()
    assert wait_for_job(qtbot, train.train(), 1800) == SUCCEEDED, train.job.record.log[-20:]
    export = window.page("export")
    export.refresh()
    assert wait_for_job(qtbot, export.export(), 900) == SUCCEEDED, export.job.record.log[-20:]
    evaluate = window.page("evaluate")
    evaluate.refresh()
    evaluate.judge.setChecked(False)
    assert wait_for_job(qtbot, evaluate.run_eval(), 1800) in (SUCCEEDED, PARTIAL)
    evaluate.refresh()
    scores = {name: figures["mc_likelihood"]["accuracy"] for name, figures in evaluate.summary_data["scores"].items()}
    assert scores["tuned"] >= scores["base"] + 0.10, scores
    rows = {evaluate.table.item(row, 0).text(): evaluate.table.item(row, 1).text()
            for row in range(evaluate.table.rowCount())}
    assert len(rows) >= 4 and all("%" in value for value in rows.values()), rows
    window.jobs_dock.hide()
    window.resize(1280, 860)
    window.show_page([page.key for page in window.pages].index("evaluate"))
    qtbot.wait(200)
    assert window.grab().save(str(screenshot_dir / "offline-check-evaluate.png"))  # the README's picture
