"""Errors in the window speak the window's words (page and button), not the command line's."""
from __future__ import annotations

from qt_helpers import wait_for_job

from doctune.desktop.jobs import FAILED


def test_a_failed_train_job_names_the_synthesize_page_not_the_command(qtbot, make_window, project):
    window = make_window()
    window.open_project(project.root)
    page = window.page("train")
    job = page.train()  # a fresh project: no generated items yet
    assert wait_for_job(qtbot, job, 120) == FAILED, job.record.log
    message = job.record.message
    assert "nothing to train on" in message
    assert "Synthesize page" in message and "Generate" in message
    assert "doctune synth" not in message and "--items" not in message
    assert page.progress.message.text() == message  # the page's progress line says the same
    # the job's log keeps the command line's words, as the CLI prints them
    assert any("doctune synth" in line for line in job.record.log)

