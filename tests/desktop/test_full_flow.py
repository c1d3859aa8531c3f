"""The whole journey through the window alone, on tiny models (slow).

new project → add documents (one bad) → tiny local GGUF teacher → synthesize → train a few steps
(the loss curve gets points) → export (verification shown) → Compare (two streamed answers, citations
on the RAG pane) → Evaluate (the scoreboard table). Only settings without a control in the window
(sizes that keep tiny models fast) are written to the project's doctune.toml by the test.
"""
from __future__ import annotations

import pytest
from qt_helpers import wait_for_job

from doctune.desktop.jobs import PARTIAL, SUCCEEDED

pytestmark = pytest.mark.slow


def _small_settings(folder, tiny_model) -> None:
    from doctune.core.project import Project
    from doctune.core.tiny import random_teacher_settings

    project = Project.open(folder)
    config = project.config
    random_teacher_settings(config)  # an untrained teacher's settings
    config.teacher.n_ctx = 1024
    synth = config.synth
    synth.max_question_chars = synth.max_answer_chars = 20
    synth.max_document_chars, synth.min_document_chars = 100, 10
    synth.entigraph_max_entities, synth.entigraph_triples = 2, False
    config.train.replay_fraction = 0.0
    config.train.batch_tokens = 256
    config.rag.gguf_format = "f16"
    config.rag.n_ctx = 1024
    config.rag.k = 2
    config.rag.max_answer_tokens = 24
    config.eval.mc_answer_tokens = 8
    config.eval.open_answer_tokens = 24
    project.save()


def _screenshot(qtbot, window, key: str, folder, suffix: str = "") -> None:
    """The page as a user sees it (jobs panel folded), saved as ``<key><suffix>.png`` (the README's pictures)."""
    window.jobs_dock.hide()
    window.show_page([page.key for page in window.pages].index(key))
    qtbot.wait(200)
    assert window.grab().save(str(folder / f"{key}{suffix}.png"))


def test_the_whole_journey_through_the_window(qtbot, make_window, tmp_path, documents, tiny_model, tiny_gguf,
                                              screenshot_dir):
    window = make_window()
    folder = tmp_path / "journey"
    window.welcome.create(folder, "Journey")
    assert window.project == folder.resolve()
    _small_settings(folder, tiny_model)

    docs = window.page("documents")
    assert wait_for_job(qtbot, docs.add_paths([str(documents)]), 300) == PARTIAL
    qtbot.waitUntil(lambda: docs.index_job is not None, timeout=10_000)
    assert wait_for_job(qtbot, docs.index_job, 300) == SUCCEEDED, docs.index_job.record.log[-20:]
    qtbot.waitUntil(lambda: docs.table.rowCount() == 5, timeout=30_000)
    assert "Could not read" in [docs.table.item(r, 4).text() for r in range(5)]
    _screenshot(qtbot, window, "documents", screenshot_dir)

    teacher = window.page("teacher")
    teacher.local_radio.setChecked(True)
    teacher.model_path.setText(str(tiny_gguf("qwen2")))
    assert wait_for_job(qtbot, teacher.test(), 300) == SUCCEEDED

    synth = window.page("synthesize")
    synth.refresh()
    for name, (box, _weight) in synth.recipe_boxes.items():
        box.setChecked(name in ("qa", "focal"))
    assert wait_for_job(qtbot, synth.run_synth(dry_run=True), 300) == SUCCEEDED
    assert synth.estimate.text()
    assert wait_for_job(qtbot, synth.run_synth(dry_run=False), 900) in (SUCCEEDED, PARTIAL)
    qtbot.waitUntil(lambda: synth.table.rowCount() > 0, timeout=30_000)
    synth.eval_button.click()
    assert wait_for_job(qtbot, synth.progress.job, 900) in (SUCCEEDED, PARTIAL)

    train = window.page("train")
    train.student.setText(str(tiny_model("qwen2")))
    train.preset.setCurrentIndex(0)
    train.max_steps.setValue(6)
    train.checkpoint_every.setValue(3)
    assert wait_for_job(qtbot, train.train(), 900) == SUCCEEDED, train.job.record.log[-20:]
    assert len(train.losses) >= 3  # the loss curve got points
    _screenshot(qtbot, window, "train", screenshot_dir)

    export = window.page("export")
    for name, box in export.format_boxes.items():
        box.setChecked(name == "f16")
    assert wait_for_job(qtbot, export.export(), 900) == SUCCEEDED
    export.refresh()
    assert "checked and ready" in export.report.toPlainText()

    compare = window.page("compare")
    compare.set_systems(["tuned", "base+rag"])
    compare.question.setText("What is the Vellmora archipelago known for?")
    compare.ask()
    qtbot.waitUntil(lambda: not any(pane.busy for pane in compare.panes), timeout=600_000)
    tuned, rag = compare.panes
    assert "time to first token" in tuned.stats.text() and "time to first token" in rag.stats.text(), \
        (tuned.view.toPlainText(), rag.view.toPlainText())
    assert rag.sources and "Sources:" in rag.view.toPlainText()
    _screenshot(qtbot, window, "compare", screenshot_dir)

    evaluate = window.page("evaluate")
    evaluate.limit.setValue(6)
    evaluate.judge.setChecked(False)
    assert wait_for_job(qtbot, evaluate.run_eval(), 1800) in (SUCCEEDED, PARTIAL), evaluate.progress.job.record.log[-20:]
    evaluate.refresh()
    assert evaluate.table.rowCount() >= 2
    evaluate.questions.selectRow(0)
    assert "Expected:" in evaluate.detail.toPlainText()
    _screenshot(qtbot, window, "evaluate", screenshot_dir)

    for width, height in ((1024, 700), (1600, 1000)):  # every page, small and large, as a user would see it
        window.resize(width, height)
        for page in window.pages:
            _screenshot(qtbot, window, page.key, screenshot_dir, suffix=f"-{width}x{height}")
