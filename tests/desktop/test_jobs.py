"""Jobs run as CLI child processes: cancel is graceful, a killed job is an error, the loop never stalls."""
from __future__ import annotations

import time

from qt_helpers import SAMPLE_DOCS, wait_for_event, wait_for_job

from doctune.desktop.jobs import CANCELLED, FAILED, JobRunner
from doctune.desktop.responsiveness import StallProbe

MAX_STALL_S = 0.100


def _many_documents(tmp_path, copies: int = 3):
    folder = tmp_path / "many"
    folder.mkdir()
    for copy in range(copies):
        for source in SAMPLE_DOCS.glob("*.md"):
            text = source.read_text(encoding="utf-8")
            (folder / f"{copy}-{source.name}").write_text(f"{text}\n\nCopy {copy}.\n", encoding="utf-8")
    return folder


def test_cancel_stops_the_job_gracefully_and_the_window_stays_responsive(qtbot, project, tmp_path):
    runner = JobRunner()
    job = runner.start("Add documents", ["add", str(_many_documents(tmp_path))], project.root)
    wait_for_event(qtbot, job, "progress")
    probe = StallProbe()
    probe.start()
    job.cancel()
    assert wait_for_job(qtbot, job, 60) == CANCELLED, job.record.log
    assert job.record.exit_code == 130
    assert probe.stop().longest_blocked_s < MAX_STALL_S


def test_a_killed_job_ends_as_an_error_not_a_hang(qtbot, project, tmp_path):
    runner = JobRunner()
    job = runner.start("Add documents", ["add", str(_many_documents(tmp_path))], project.root)
    wait_for_event(qtbot, job, "progress")
    job.kill()
    assert wait_for_job(qtbot, job, 30) == FAILED
    assert "stopped unexpectedly" in job.record.message
    assert job.record.log[-1].startswith("[failed]")


def test_a_fatal_error_is_shown_in_plain_words(qtbot, tmp_path):
    runner = JobRunner()
    job = runner.start("Status", ["status"], tmp_path / "not-a-project")
    assert wait_for_job(qtbot, job, 30) == FAILED
    assert "not a DocTune project" in job.record.message
    assert "Traceback" not in job.record.message


def test_the_event_loop_never_stalls_while_a_job_streams_events(qtbot, make_window, project, tmp_path):
    window = make_window()
    window.open_project(project.root)
    page = window.page("documents")
    probe = StallProbe()
    probe.start()
    job = page.add_paths([str(_many_documents(tmp_path))])
    events: list[dict] = []
    job.event.connect(events.append)
    wait_for_job(qtbot, job, 300)
    qtbot.waitUntil(lambda: page.index_job is not None, timeout=10_000)
    page.index_job.event.connect(events.append)
    wait_for_job(qtbot, page.index_job, 300)  # the search index is brought up to date next
    probe.stop()
    assert len(events) >= 3
    assert probe.longest_blocked_s < MAX_STALL_S, (
        f"the event loop was blocked for {probe.longest_blocked_s * 1000:.0f} ms "
        f"(longest gap including time the OS ran other programs: {probe.longest_gap_s * 1000:.0f} ms)")


def test_closing_the_window_cancels_running_jobs(qtbot, make_window, project, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    window = make_window()
    window.open_project(project.root)
    job = window.page("documents").add_paths([str(_many_documents(tmp_path))])
    wait_for_event(qtbot, job, "progress")
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: QMessageBox.StandardButton.Yes)
    started = time.perf_counter()
    window.close()
    assert time.perf_counter() - started < 0.5  # the window does not freeze while the job stops
    assert window.isVisible() and "Stopping 1 job(s)" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=30_000)
    assert job.record.state == CANCELLED
    assert not job.running


def test_a_phase_without_a_message_is_named_and_a_stop_request_stays_said(qtbot):
    from doctune.desktop.widgets import JobProgress, phase_name

    assert phase_name("train.replay").startswith("Generating the base student's own answers")
    assert phase_name("export.verify.probe") == "Checking the exported file against the model"
    assert phase_name("something.new") == "Working…"

    class FakeJob:  # only the signals JobProgress listens to; the real job is tested above
        cancel_requested = False

    progress = JobProgress()
    qtbot.addWidget(progress)
    progress.job = FakeJob()
    progress._on_event({"event": "progress", "stage": "train.replay", "done": 1, "total": 4})
    assert progress.message.text().startswith("Generating the base student's own answers")
    progress.job.cancel_requested = True
    progress.message.setText("Stopping at the next safe point…")
    progress._on_event({"event": "progress", "stage": "train", "done": 2, "total": 4, "message": "step 2"})
    assert progress.message.text() == "Stopping at the next safe point…"
