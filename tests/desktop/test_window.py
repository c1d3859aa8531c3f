"""The window: every page renders (and is screenshotted), documents go in through the GUI, settings persist."""
from __future__ import annotations

from pathlib import Path

from qt_helpers import wait_for_job

from doctune.desktop.jobs import PARTIAL
from doctune.desktop.widgets import LazyPlot


def _open_with_documents(make_window, qtbot, project, documents):
    window = make_window()
    window.open_project(project.root)
    page = window.page("documents")
    state = wait_for_job(qtbot, page.add_paths([str(documents)]))
    qtbot.waitUntil(lambda: page.table.rowCount() == 5, timeout=30000)
    return window, page, state


def test_documents_added_through_the_gui_show_the_bad_one_in_plain_words(make_window, qtbot, project, documents):
    window, page, state = _open_with_documents(make_window, qtbot, project, documents)
    assert state == PARTIAL  # four read, one could not be
    rows = {page.table.item(r, 0).text(): [page.table.item(r, c).text() for c in range(6)] for r in range(5)}
    assert rows["broken.pdf"][4] == "Could not read"
    assert "broken.pdf" not in rows["broken.pdf"][5] and len(rows["broken.pdf"][5]) > 20  # a reason, not a traceback
    assert "Traceback" not in rows["broken.pdf"][5]
    good = [row for name, row in rows.items() if name != "broken.pdf"]
    assert all(row[4] == "Ready" and int(row[3]) > 0 for row in good)
    assert "4 document(s) ready, 1 with problems" in page.totals.text()
    assert window.sidebar.item(0).text().startswith("●")  # Documents step done
    assert window.sidebar.item(3).text().startswith("○")  # Train not started


def test_each_page_renders_and_is_saved_as_a_screenshot(make_window, qtbot, project, documents, screenshot_dir):
    window, _page, _state = _open_with_documents(make_window, qtbot, project, documents)
    window.jobs_dock.hide()
    for index, page in enumerate(window.pages):
        window.show_page(index)
        qtbot.waitUntil(lambda page=page: window.stack.currentWidget() is page)
        plots = page.findChildren(LazyPlot)  # built once pyqtgraph is imported in the background
        qtbot.waitUntil(lambda plots=plots: all(plot.widget is not None for plot in plots), timeout=30000)
        qtbot.wait(50)
        image = window.grab()
        assert not image.isNull() and image.width() >= 1000
        path = screenshot_dir / f"{index + 1}-{page.key}.png"
        assert image.save(str(path))
        assert path.stat().st_size > 10_000
    window.show_welcome()
    assert window.grab().save(str(screenshot_dir / "0-welcome.png"))


def test_last_project_page_and_geometry_persist(make_window, qtbot, project, settings):
    from doctune.desktop.app import create_window

    window = make_window()
    window.open_project(project.root)
    window.show_page(3)
    window.resize(701, 521)  # inside the offscreen screen (800 × 600)
    window.close()
    restored = create_window(settings=settings)
    qtbot.addWidget(restored)
    assert restored.project == Path(project.root)
    assert restored.stack.currentWidget() is restored.page("train")
    assert restored.recent_projects() == [str(project.root)]
    restored.show()
    assert restored.width() == 701
    restored.close()


def test_welcome_is_shown_without_a_project_and_offers_the_sample(make_window):
    from PySide6.QtWidgets import QLabel

    window = make_window()
    assert window.stack.currentWidget() is window.welcome
    assert not window.sidebar.isEnabled()
    texts = " ".join(label.text() for label in window.welcome.findChildren(QLabel))
    assert "Try the sample" in texts and "made-up world" in texts
    assert window.welcome.offline_button.isEnabled() and window.welcome.sample_button.isEnabled()


def test_keyboard_shortcuts_switch_pages(make_window, qtbot, project):
    from PySide6.QtCore import Qt

    window = make_window()
    window.open_project(project.root)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    qtbot.keyClick(window, Qt.Key.Key_6, Qt.KeyboardModifier.ControlModifier)
    assert window.stack.currentWidget() is window.page("compare")
    qtbot.keyClick(window, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert window.stack.currentWidget() is window.page("documents")


def test_a_page_shows_the_project_as_it_is_when_it_is_opened(make_window, qtbot, project):
    from run_folders import finished_run

    window = make_window()
    window.open_project(project.root)
    window.show_page(4)
    export = window.page("export")
    assert export.run_note.text() == "No finished training run yet."
    window.show_page(3)
    finished_run(project, "run-1", 1000.0)  # training finished meanwhile (in a job, or another window)
    window.show_page(4)
    assert export.run_note.text() == "Run to export: run-1."


def test_removing_documents_asks_clears_the_selection_and_can_be_undone(make_window, qtbot, project, documents,
                                                                        monkeypatch):
    window, page, _state = _open_with_documents(make_window, qtbot, project, documents)
    asked = []
    monkeypatch.setattr(page, "confirm_removal", lambda names: asked.append(names) or len(asked) > 1)
    page.table.selectRow(0)
    assert page.remove_selected() is None and page.table.rowCount() == 5  # said no: nothing removed
    flags = page.table.selectionModel().SelectionFlag
    for row in (0, 1):
        page.table.selectionModel().select(page.table.model().index(row, 0), flags.Select | flags.Rows)
    removed_names = {page.table.item(row, 0).text() for row in (0, 1)}
    wait_for_job(qtbot, page.remove_selected())
    assert set(asked[-1]) == removed_names
    qtbot.waitUntil(lambda: page.table.rowCount() == 3, timeout=30000)
    assert not page.table.selectionModel().selectedRows()  # a second Delete removes nothing
    assert page.remove_selected() is None
    assert page.restore_button.isEnabled() and page.restore_button.text() == "Restore removed (2)"
    wait_for_job(qtbot, page.restore_removed())
    qtbot.waitUntil(lambda: page.table.rowCount() == 5, timeout=60000)
    names = {page.table.item(row, 0).text() for row in range(5)}
    assert removed_names <= names and not page.restore_button.isEnabled()


def test_copied_commands_quote_every_path_and_local_means_loopback(make_window, qtbot, tmp_path, tiny_gguf):
    import shlex

    from run_folders import finished_run

    from doctune.core.project import Project
    from doctune.desktop.pages.teacher import is_local_url

    project = Project.create(tmp_path / "it's; rm -rf ~")
    finished_run(project, "run-1", 1000.0, gguf=tiny_gguf("qwen2", "f16"), fmt=project.config.rag.gguf_format)
    window = make_window()
    window.open_project(project.root)
    commands = window.page("export").commands()
    for command in commands.values():
        words = shlex.split(command.split(" > ")[0])
        assert any(word.endswith("model-q8_0.gguf") and "it's; rm -rf ~" in word for word in words), command
    assert is_local_url("http://127.0.0.1:8080/v1") and is_local_url("http://localhost:11434/v1")
    assert not is_local_url("http://evil.localhost:8080/v1")  # a name the hosts file does not map is not local


def test_the_teacher_page_offers_recommended_models_that_fit_this_computer(make_window, qtbot, project, monkeypatch):
    from doctune.core.project import Project
    from doctune.core.teachers.catalog import RECOMMENDED

    window = make_window()
    window.open_project(project.root)
    page = window.page("teacher")
    qtbot.waitUntil(lambda: "This computer:" in page.machine.text(), timeout=60_000)  # the real probe, a child
    page.show_machine(8.0, None)
    assert "8 GB of memory, no NVIDIA GPU" in page.machine.text()
    items = [page.recommended.itemText(i) for i in range(page.recommended.count())]
    assert len(items) == len(RECOMMENDED) and "✓ fits" in items[0] and "✗ too big" in items[-1]
    assert "licence Apache-2.0" in page.recommended_detail.text()

    project.config.privacy.offline = True  # nothing may be downloaded: said, and nothing changes
    project.save()
    errors = []
    monkeypatch.setattr("doctune.desktop.pages.teacher.show_error", lambda parent, message, *rest: errors.append(message))
    assert page.choose_recommended() is None and "Choose a file" in errors[0]

    project.config.privacy.offline = False
    project.config.privacy.allow_remote_teacher = True
    project.save()
    page.recommended.setCurrentIndex(0)
    job = page.choose_recommended()  # the download itself needs Hugging Face; here the settings are what we check
    teacher = Project.open(project.root).config
    assert (teacher.teacher.hf_repo, teacher.teacher.hf_file) == (RECOMMENDED[0].hf_repo, RECOMMENDED[0].hf_file)
    assert teacher.teacher.model_path == "" and teacher.privacy.allow_remote_teacher is False
    assert RECOMMENDED[0].hf_file in page.model_path.placeholderText()
    job.cancel()


def test_recent_projects_show_the_folder_name_and_a_short_place(tmp_path):
    from doctune.desktop.welcome import recent_label

    home = tmp_path / "home"
    assert recent_label(str(home / "work" / "Notes"), home) == "Notes   —   ~/work"
    assert recent_label(str(home / "Notes"), home) == "Notes   —   ~"
    assert recent_label("/srv/projects/Notes", home) == "Notes   —   /srv/projects"


def test_the_sample_asks_where_it_is_created(make_window, qtbot, monkeypatch, tmp_path):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QFileDialog

    window = make_window()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args: str(tmp_path))

    def answer(button_text: str) -> None:
        box = window.sample_question
        [button] = [b for b in box.buttons() if b.text() == button_text]
        button.click()

    window.sample_question = None
    QTimer.singleShot(0, lambda: answer("Cancel"))
    window._start_sample(True)
    assert window.runner.running() == []  # cancelled: nothing created
    QTimer.singleShot(0, lambda: answer("Choose another folder…"))
    window._start_sample(True)
    [job] = window.runner.running()
    command = job.record.command
    assert command[command.index("sample") + 1] == str(tmp_path / "DocTune offline check")
    assert "--offline-check" in command
    job.cancel()


def test_the_first_tab_after_the_sidebar_reaches_a_control_of_the_page(make_window, qtbot, project):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication, QScrollArea

    window = make_window()
    window.open_project(project.root)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    for index, page in enumerate(window.pages):
        window.show_page(index)
        window.sidebar.setFocus()
        qtbot.keyClick(window.sidebar, Qt.Key.Key_Tab)
        focused = QApplication.focusWidget()
        assert not isinstance(focused, QScrollArea) and page.isAncestorOf(focused), (page.key, focused)
