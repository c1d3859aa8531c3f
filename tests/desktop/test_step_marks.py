"""What the window says after a failure, also after a restart: the Export page lists the files that failed with
their reasons, and the sidebar marks neither a teacher that failed its test nor an export with no usable file
as done."""
from __future__ import annotations

from qt_helpers import wait_for_job

from doctune.desktop.jobs import FAILED


def _finished_run(project, run_id: str = "20260101-000000-aaaa"):
    from doctune.core.records import RunConfig, RunLayout, RunSummary

    layout = RunLayout(project.runs_dir / run_id)
    layout.adapter.mkdir(parents=True)
    RunConfig(run_id=run_id).save(layout.config)
    RunSummary(status="complete", run_id=run_id, steps=4, final_loss=2.5, finished_at=1.0).save(layout.summary)
    return layout


def _export(layout, f16_ready: bool) -> None:
    """The manifest an export leaves when F16 was written (and passed its checks when ``f16_ready``) and Q8_0
    could not be written: the export stopped there, before Q4_K_M."""
    from doctune.core.records import ExportedFile, ExportManifest

    folder = layout.export.folder
    folder.mkdir(parents=True)
    (folder / "run-f16.gguf").write_bytes(b"GGUF" + bytes(60))
    f16 = ExportedFile(file="run-f16.gguf", bytes=64, ready=f16_ready, verification={
        "passed": f16_ready, "problems": [] if f16_ready else ["it predicts other next words than the trained model"],
        "checks": {"top1": {"agreement": 0.95 if f16_ready else 0.1, "threshold": 0.5}}})
    q8 = ExportedFile(file="run-q8_0.gguf", ready=False, error="This llama.cpp cannot quantize to Q8_0.")
    ExportManifest(formats=["f16", "q8_0", "q4_k_m"], started_at=2.0, finished_at=None,
                   files={"f16": f16, "q8_0": q8}).save(layout.export.manifest)


def _mark(window, key: str) -> tuple[str, str]:
    item = window.sidebar.item([page.key for page in window.pages].index(key))
    return item.text()[0], item.toolTip()


def test_the_export_page_lists_the_files_that_failed_with_their_reasons(qtbot, make_window, project, screenshot_dir):
    _export(_finished_run(project), f16_ready=True)
    window = make_window()  # as after a restart: nothing but the project's files
    window.resize(1024, 700)
    window.open_project(project.root)
    window.show_page(4)
    text = window.page("export").report.toPlainText()
    assert "run-f16.gguf: checked and ready to use" in text
    assert "run-q8_0.gguf: failed — This llama.cpp cannot quantize to Q8_0." in text
    assert "Q4_K_M: not exported — the export stopped before this file" in text
    assert _mark(window, "export")[0] == _mark(window, "compare")[0] == "●"  # F16 can be used
    window.jobs_dock.hide()
    qtbot.wait(200)
    assert window.grab().save(str(screenshot_dir / "export-failed-files-1024x700.png"))


def test_an_export_with_no_usable_file_is_not_marked_done(make_window, project):
    _export(_finished_run(project), f16_ready=False)
    window = make_window()
    window.open_project(project.root)
    for key in ("export", "compare"):
        mark, tip = _mark(window, key)
        assert mark == "○" and "the last export has no file that passed its checks" in tip
    assert _mark(window, "train")[0] == "●"


def test_a_teacher_that_failed_its_test_is_to_do_until_its_settings_change(qtbot, make_window, project, tmp_path):
    window = make_window()
    window.open_project(project.root)
    page = window.page("teacher")
    page.local_radio.setChecked(True)
    page.model_path.setText(str(tmp_path / "missing-teacher.gguf"))
    job = page.test()
    assert _mark(window, "teacher")[0] == "●"  # chosen, not yet tested
    assert wait_for_job(qtbot, job, 120) == FAILED
    mark, tip = _mark(window, "teacher")
    assert mark == "○" and "its last test failed" in tip

    again = make_window()  # after a restart too
    again.open_project(project.root)
    assert _mark(again, "teacher")[0] == "○"
    page = again.page("teacher")
    page.model_path.setText(str(tmp_path / "another-teacher.gguf"))
    assert page.save()
    assert _mark(again, "teacher")[0] == "●"  # other settings: that failed test says nothing about them


def test_the_lab_teacher_counts_as_a_chosen_teacher(make_window, project):
    """The offline check's project uses the lab teacher, which needs no file or server: its step is done."""
    project.config.teacher.kind = "lab"
    project.save()
    window = make_window()
    window.open_project(project.root)
    assert _mark(window, "teacher")[0] == "●"
