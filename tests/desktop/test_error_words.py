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



def test_a_full_disk_says_how_much_to_free_and_which_button_to_press_again(tmp_path):
    """The message the window shows for a full disk: no "re-run", no command; the page and the button."""
    import errno

    import pytest

    from doctune.core.errors import disk_errors, exception_window_text
    from doctune.core.synth.step import SynthWriteError

    with pytest.raises(SynthWriteError) as caught, disk_errors(
            "generated items", tmp_path, SynthWriteError, "Re-running skips what was written and generates the rest.",
            need_bytes=lambda: 10**18, window_hint="Press Generate again on the Synthesize page to generate the rest."):
        raise OSError(errno.ENOSPC, "No space left on device")
    shown = exception_window_text(caught.value)
    assert f"the disk is full at {tmp_path}; free " in shown and " MB. Press Generate again on the Synthesize page" in shown
    assert "re-run" not in shown.lower() and "doctune" not in shown
    assert "Re-running skips" in str(caught.value)  # the CLI keeps its own words
