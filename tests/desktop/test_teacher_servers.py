"""The Teacher page with several servers: one address per line, the consent for those not on this computer,
and Test reporting each server; a test's verdict said once, a failure under a bar that says Failed."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "core" / "teachers"))

from fault_server import FaultServer  # noqa: E402
from qt_helpers import wait_for_job  # noqa: E402

from doctune.desktop.jobs import FAILED, SUCCEEDED  # noqa: E402


def test_several_addresses_one_per_line_with_one_consent_and_a_test_of_each(make_window, qtbot, project,
                                                                             monkeypatch):
    from doctune.core.project import Project

    errors: list[str] = []
    monkeypatch.setattr("doctune.desktop.pages.teacher.show_error", lambda parent, message, *rest: errors.append(message))
    window = make_window()
    window.open_project(project.root)
    page = window.page("teacher")
    page.endpoint_radio.setChecked(True)
    page.model_name.setText("test")

    page.addresses.setPlainText("http://127.0.0.1:8001/v1\n\nlocalhost:8002\n")
    assert not page.save() and "'localhost:8002' is not a server address" in errors[-1]

    page.addresses.setPlainText("http://127.0.0.1:8001/v1\nhttp://10.0.0.6:8000/v1\nhttp://10.0.0.7:8000/v1/")
    assert "10.0.0.6, 10.0.0.7 are not on this computer" in page.remote_warning.text()
    assert not page.remote_opt_in.isHidden()
    assert not page.save() and "Tick the box" in errors[-1]
    assert Project.open(project.root).config.teacher.base_urls == []  # nothing saved
    page.remote_opt_in.setChecked(True)
    assert page.save()
    saved = Project.open(project.root).config
    assert saved.teacher.endpoint_urls() == ["http://127.0.0.1:8001/v1", "http://10.0.0.6:8000/v1",
                                            "http://10.0.0.7:8000/v1"]
    assert saved.teacher.kind == "openai" and saved.privacy.allow_remote_teacher

    with FaultServer() as a, FaultServer() as b:
        page.addresses.setPlainText(f"{a.base_url}\n{b.base_url}")
        assert page.remote_opt_in.isHidden()
        job = page.test()
        qtbot.waitUntil(lambda: "valid JSON" in page.result.text(), timeout=60_000)
        assert job is not None
    saved = Project.open(project.root).config
    assert saved.teacher.endpoint_urls() == [a.base_url, b.base_url] and not saved.privacy.allow_remote_teacher
    for url in (a.base_url, b.base_url):
        assert url.split("/")[2] in page.result.text()
    page.refresh()
    assert page.addresses.toPlainText() == f"{a.base_url}\n{b.base_url}"


def test_a_project_with_the_lab_teacher_keeps_it_when_saved(make_window, project):
    project.config.teacher.kind = "lab"
    project.save()
    window = make_window()
    window.open_project(project.root)
    page = window.page("teacher")
    assert not page.lab_radio.isHidden() and page.lab_radio.isChecked()
    assert page.save()
    from doctune.core.project import Project

    assert Project.open(project.root).config.teacher.kind == "lab"


def _visible_label_texts(window, page) -> list[str]:
    from PySide6.QtWidgets import QLabel

    return [label.text() for label in page.findChildren(QLabel) if label.isVisibleTo(window) and label.text()]


def test_a_test_verdict_is_said_once_and_a_failure_keeps_its_reason_under_failed(make_window, qtbot, project,
                                                                                 tmp_path):
    window = make_window()
    window.open_project(project.root)
    page = window.page("teacher")
    window.show_page([each.key for each in window.pages].index("teacher"))
    page.endpoint_radio.setChecked(True)
    page.model_name.setText("test")
    with FaultServer() as server:
        page.addresses.setPlainText(server.base_url)
        job = page.test()
        assert page.progress.isVisibleTo(window) and page.result.text() == ""  # "Saved." makes way for the test
        assert wait_for_job(qtbot, job, 60) == SUCCEEDED
    verdict = job.record.message
    assert "valid JSON" in verdict
    assert [text for text in _visible_label_texts(window, page) if verdict in text] == [verdict]
    assert page.result.text() == verdict and not page.progress.isVisibleTo(window)

    page.local_radio.setChecked(True)
    page.model_path.setText(str(tmp_path / "missing-teacher.gguf"))
    job = page.test()
    assert page.result.text() == ""  # the passed test's figures do not stay under this one's progress line
    assert wait_for_job(qtbot, job, 120) == FAILED
    reason = job.record.message
    assert "missing-teacher.gguf" in reason and "press Choose a file…" in reason  # the button as it is named
    assert [text for text in _visible_label_texts(window, page) if reason in text] == [reason]
    assert page.progress.isVisibleTo(window) and page.progress.bar.text() == "Failed"
    assert page.progress.message.text() == reason and page.result.text() == ""
