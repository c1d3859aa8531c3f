"""Evaluate page at the smallest supported window (1024×700): the scoreboard fits without sideways scrolling
and the chart's labels do not overlap."""
from __future__ import annotations

import pytest


def _record(qid: str, system: str, right: bool) -> dict:
    return {"question_id": qid, "system": system, "kind": "mc", "doc_id": "d1", "doc_title": "Doc",
            "question": f"Question {qid}?", "options": ["w", "x", "y", "z"], "expected": "A", "reference": "w",
            "answer": "A" if right else "B", "ttft_s": 0.21, "total_s": 1.37,
            "context_tokens": 1536 if "rag" in system else 40, "sources": [],
            "mc": {"letter": "A" if right else "B", "letter_correct": right,
                   "likelihood_letter": "A" if right else "B", "likelihood_correct": right}}


@pytest.fixture
def evaluated(project):
    from doctune.core.evaluate.summary import summarize
    from doctune.core.records import EvalSummary, ProjectLayout

    systems = ["base", "base+rag", "tuned", "tuned+rag"]
    records = [_record(f"q{i:02d}", system, right=i < 8 + 3 * n) for i in range(30) for n, system in enumerate(systems)]
    summary = summarize(records, eval_id="20260101-000000", systems=systems,
                        question_ids=sorted({r["question_id"] for r in records}), skipped={},
                        comparisons=[("tuned", "base+rag"), ("tuned", "base")], extra={"complete": True})
    layout = ProjectLayout(project.root).evaluation("20260101-000000")
    layout.summary.parent.mkdir(parents=True)
    EvalSummary.from_data(summary).save(layout.summary)
    return project


def test_the_scoreboard_fits_at_1024_by_700(qtbot, make_window, evaluated, screenshot_dir):
    window = make_window()
    window.resize(1024, 700)
    window.open_project(evaluated.root)
    window.show_page(6)
    page = window.page("evaluate")
    qtbot.waitUntil(lambda: page.chart.widget is not None, timeout=30_000)
    window.jobs_dock.hide()
    qtbot.wait(300)
    assert window.grab().save(str(screenshot_dir / "evaluate-1024x700.png"))
    assert page.table.rowCount() == 4
    assert not page.table.horizontalScrollBar().isVisible()  # every column in view
    from PySide6.QtCore import Qt

    assert page.board.orientation() == Qt.Orientation.Vertical  # the chart under the table, at the page's width
    scroll = page.body.parentWidget().parentWidget().parentWidget()
    scroll.verticalScrollBar().setValue(page.chart.y())
    qtbot.wait(200)
    assert window.grab().save(str(screenshot_dir / "evaluate-chart-1024x700.png"))
    window.resize(1600, 1000)
    qtbot.waitUntil(lambda: page.board.orientation() == Qt.Orientation.Horizontal, timeout=5_000)
    qtbot.wait(300)
    assert not page.table.horizontalScrollBar().isVisible()
    assert window.grab().save(str(screenshot_dir / "evaluate-1600x1000.png"))
