"""Compare: one question, answers streamed into every pane at once, with timings; stop works."""
from __future__ import annotations

import time


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
