"""Synthesize: the mix and the amount go to the job as options; the project's doctune.toml is left as it is."""
from __future__ import annotations

import json

import pytest
from qt_helpers import SAMPLE_DOCS, wait_for_job

from doctune.desktop.jobs import FAILED, SUCCEEDED


def test_the_mix_and_amount_are_options_and_stay_chosen(qtbot, make_window, project):
    toml = (project.root / "doctune.toml").read_bytes()
    window = make_window()
    window.open_project(project.root)
    page = window.page("synthesize")
    assert page.amplification.value() == 16  # the project's amount (the default)
    page.amplification.setValue(24)
    box, weight = page.recipe_boxes["focal"]
    box.setChecked(False)
    page.recipe_boxes["qa"][1].setValue(2)
    assert page.synth_args() == ["synth", "--amplification", "24", "--recipes", "qa=2"]
    assert wait_for_job(qtbot, page.run_synth(dry_run=True), 120) == FAILED  # no documents yet: said, not crashed
    page.refresh()
    assert page.amplification.value() == 24 and not box.isChecked()  # what the user chose stays chosen
    assert (project.root / "doctune.toml").read_bytes() == toml


@pytest.fixture
def project_with_items(project):
    """Two documents read; items of two kinds for the first, one failed task for the second."""
    from project_helpers import ingest

    from doctune.core.records import ProjectLayout, SynthOutcome
    from doctune.core.store import list_chunks

    ingest(project, sorted(SAMPLE_DOCS.glob("*.md"))[:2])
    chunks = list_chunks(project)
    first, second = chunks[0], next(chunk for chunk in chunks if chunk["doc_id"] != chunks[0]["doc_id"])
    items = [{"id": f"i{n}", "kind": "qa", "chunk_id": first["id"], "doc_id": first["doc_id"], "recipe": "qa",
              "messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]}
             for n in range(3)]
    items.append({"id": "d0", "kind": "document", "chunk_id": first["id"], "doc_id": first["doc_id"],
                  "recipe": "focal", "text": "A focal rewrite."})
    layout = ProjectLayout(project.root)
    layout.items.parent.mkdir(parents=True, exist_ok=True)
    layout.items.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    layout.item_outcomes.write_text(json.dumps(SynthOutcome(
        id="f0", outcome="failed", reason="teacher error", recipe="qa", chunk_id=second["id"],
        doc_id=second["doc_id"]).to_data()) + "\n", encoding="utf-8")
    return project


def test_coverage_is_a_table_and_the_estimate_says_where_its_time_comes_from(qtbot, make_window, project_with_items,
                                                                             screenshot_dir):
    from doctune.core.synth.step import save_speed

    window = make_window()
    window.resize(1024, 700)
    window.open_project(project_with_items.root)
    window.show_page(2)
    page = window.page("synthesize")
    table = page.coverage_table
    qtbot.waitUntil(lambda: table.rowCount() == 2 and table.item(0, 0).text().endswith(".md"), timeout=30_000)
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers == ["Document", "Items", "Questions & answers", "Focal rewrites", "Not written"]
    rows = sorted([table.item(r, c).text() for c in range(table.columnCount())] for r in range(2))
    assert [row[1:] for row in rows] == [["4", "3", "1", "0"], ["none yet", "0", "0", "1"]]
    assert "4 item(s) from 1 of 2 document(s)" in page.coverage.text()

    assert wait_for_job(qtbot, page.run_synth(dry_run=True), 120) == SUCCEEDED
    text = page.estimate.text()
    assert "nothing measured yet" in text and "press Test on the Teacher page" in text and "doctune" not in text
    save_speed(project_with_items, "local", 600, 60.0, 20, wall_seconds=15.0)  # a generation: 0.75 s per call
    assert wait_for_job(qtbot, page.run_synth(dry_run=True), 120) == SUCCEEDED
    assert "measured while generating" in page.estimate.text()
    window.jobs_dock.hide()
    qtbot.wait(200)
    assert window.grab().save(str(screenshot_dir / "synthesize-coverage-1024x700.png"))
    page.body.parentWidget().parentWidget().parentWidget().verticalScrollBar().setValue(10_000)
    qtbot.wait(100)
    assert window.grab().save(str(screenshot_dir / "synthesize-coverage-bottom-1024x700.png"))
