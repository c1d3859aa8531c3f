"""Compare: one question, answers streamed into every pane at once, with timings; stop works."""
from __future__ import annotations

import time

from run_folders import finished_run


def test_one_question_streams_into_two_panes(qtbot, make_window, project, tiny_gguf):
    model = str(tiny_gguf("qwen2", "f16"))
    project.config.rag.max_answer_tokens = 96
    project.save()
    window = make_window()
    window.open_project(project.root)
    window.show_page(5)
    page = window.page("compare")
    page.set_systems([model, model])  # two systems, each with its own loaded copy
    assert len(page.panes) == 2
    arrivals: dict[int, list[float]] = {0: [], 1: []}
    for index, pane in enumerate(page.panes):
        pane.signals.piece.connect(lambda _piece, index=index: arrivals[index].append(time.perf_counter()))
    page.question.setText("What is the Vellmora archipelago known for?")
    page.ask()
    qtbot.waitUntil(lambda: not any(pane.busy for pane in page.panes), timeout=120_000)
    for pane in page.panes:
        assert "time to first token" in pane.stats.text(), pane.stats.text()
        assert "What is the Vellmora archipelago known for?" in pane.view.toPlainText()
    assert all(arrivals.values())  # both panes received streamed pieces
    assert len(page.panes[0].session.history) == 2  # the conversation is kept per pane


def test_stop_ends_the_answers_and_a_broken_system_shows_an_error(qtbot, make_window, project, tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF but not really")
    window = make_window()
    window.open_project(project.root)
    page = window.page("compare")
    page.set_systems(["tuned", str(broken)])
    page.question.setText("Anything?")
    page.ask()
    qtbot.waitUntil(lambda: not any(pane.busy for pane in page.panes), timeout=60_000)
    texts = [pane.view.toPlainText() for pane in page.panes]
    assert all("Traceback" not in text for text in texts)
    assert "tuned" in texts[0].lower() or "export" in texts[0].lower() or "train" in texts[0].lower(), texts[0]
    assert "broken.gguf" in texts[1] or "GGUF" in texts[1], texts[1]


def test_a_pane_says_when_tuned_is_an_older_run(qtbot, make_window, project, tiny_gguf):
    project.config.rag.max_answer_tokens = 8
    project.save()
    finished_run(project, "run-a", 1000.0, gguf=tiny_gguf("qwen2", "f16"), fmt=project.config.rag.gguf_format)
    finished_run(project, "run-b", 2000.0)  # newer, without a verified export
    window = make_window()
    window.open_project(project.root)
    page = window.page("compare")
    page.set_systems(["tuned"])
    page.question.setText("Anything?")
    page.ask()
    qtbot.waitUntil(lambda: not page.panes[0].busy, timeout=60_000)
    text = page.panes[0].view.toPlainText()
    assert "model of run run-a" in text and "run-b, has no verified" in text, text
    assert "time to first token" in page.panes[0].stats.text()


def test_a_pane_whose_model_process_is_killed_shows_an_error_and_the_others_go_on(qtbot, make_window, project,
                                                                                  tiny_gguf):
    import os
    import signal

    model = str(tiny_gguf("qwen2", "q8_0"))
    project.config.rag.max_answer_tokens = 24
    project.save()
    window = make_window()
    window.open_project(project.root)
    page = window.page("compare")
    page.set_systems([model, model])
    page.question.setText("Where is the Quintrel Foundry?")
    page.ask()
    qtbot.waitUntil(lambda: not any(pane.busy for pane in page.panes), timeout=120_000)
    killed, survivor = page.panes
    os.kill(killed.session.system.backend.pid, signal.SIGKILL)

    page.question.setText("And who built it?")
    page.ask()
    qtbot.waitUntil(lambda: not any(pane.busy for pane in page.panes), timeout=120_000)
    assert "llama.cpp crashed while answering with this model" in killed.view.toPlainText()
    assert "SIGKILL" in killed.view.toPlainText() and "Traceback" not in killed.view.toPlainText()
    assert "time to first token" in survivor.stats.text(), survivor.stats.text()
    assert window.isVisible()

    page.question.setText("One more time?")  # the killed pane starts a fresh model process for the next question
    page.ask()
    qtbot.waitUntil(lambda: not any(pane.busy for pane in page.panes), timeout=120_000)
    assert "time to first token" in killed.stats.text(), killed.stats.text()


def test_three_panes_and_the_controls_fit_a_small_window(qtbot, make_window, project, tiny_gguf):
    from PySide6.QtCore import QPoint, QRect

    model = str(tiny_gguf("qwen2", "f16"))
    project.config.rag.max_answer_tokens = 48
    project.save()
    window = make_window()
    window.resize(1024, 700)
    window.jobs_dock.hide()
    window.open_project(project.root)
    window.show_page(5)
    page = window.page("compare")
    page.set_systems([model, model, model])
    page.question.setText("What is the Vellmora archipelago known for, and who first mapped its northern reefs?")
    page.ask()
    qtbot.waitUntil(lambda: not any(pane.busy for pane in page.panes), timeout=120_000)
    qtbot.wait(100)
    visible = QRect(QPoint(0, 0), window.size())

    def inside(widget) -> bool:
        return visible.contains(QRect(widget.mapTo(window, QPoint(0, 0)), widget.size()))

    assert all(inside(pane) for pane in page.panes), [pane.geometry() for pane in page.panes]
    assert all(inside(button) for button in (page.send_button, page.stop_button, page.clear_button, page.question))
    from PySide6.QtWidgets import QScrollArea

    area = page.findChild(QScrollArea)
    assert not area.horizontalScrollBar().isVisible() and not area.verticalScrollBar().isVisible()
    assert all("context tokens" in pane.stats.text() for pane in page.panes)


def test_a_held_out_question_is_marked_against_its_reference(qtbot, make_window, project, tiny_gguf):
    import json

    from doctune.core.items import questions_path

    model = str(tiny_gguf("qwen2", "f16"))
    project.config.rag.max_answer_tokens = 16
    project.save()
    path = questions_path(project)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"id": "q1", "kind": "open", "question": "Who cast the first bell of the Quintrel Foundry?",
              "answer": "Maren Holt cast it in 1871."}
    path.write_text(json.dumps(record) + "\n")
    window = make_window()
    window.open_project(project.root)
    page = window.page("compare")
    page.set_systems([model])
    assert page.held_out.count() == 2 and page.held_out.isEnabled()
    page._choose_held_out(1)
    assert page.question.text() == record["question"]
    page.question.setText("  who cast the FIRST bell of the Quintrel Foundry? ")  # typed differently: still held out
    page.ask()
    qtbot.waitUntil(lambda: not page.panes[0].busy, timeout=120_000)
    assert "reference answer: Maren Holt cast it in 1871." in page.reference_label.text()
    assert "differs from the reference answer" in page.panes[0].view.toPlainText()  # a random model's words


def test_agreement_with_a_reference_is_word_overlap():
    from doctune.core.evaluate.scoring import agrees_with_reference

    assert agrees_with_reference("It was Maren Holt, in 1871.", "Maren Holt cast it in 1871.")[0]
    assert not agrees_with_reference("seasons seasons seasons", "Maren Holt cast it in 1871.")[0]


def test_a_base_pane_exports_the_base_model_first_as_a_job_then_answers(qtbot, make_window, project, tiny_model):
    from doctune.core.export import find_base_gguf

    project.config.student.model = str(tiny_model("qwen2"))
    project.config.rag.max_answer_tokens = 24
    project.config.rag.gguf_format = "f16"
    project.save()
    window = make_window()
    window.open_project(project.root)
    page = window.page("compare")
    page.set_systems(["base"])
    page.question.setText("What is the Vellmora archipelago known for?")
    page.ask()
    [pane] = page.panes
    assert pane.busy and page.base_job is not None and "exporting the base model" in pane.stats.text()
    qtbot.waitUntil(lambda: not pane.busy, timeout=600_000)
    assert "time to first token" in pane.stats.text(), pane.view.toPlainText()
    assert find_base_gguf(project, "f16") is not None and page.base_job is None
    page.question.setText("And who lives there?")
    page.ask()  # the base model is ready now: no second export
    assert page.base_job is None
    qtbot.waitUntil(lambda: not pane.busy, timeout=120_000)
