"""Aggregation and the HTML report on hand-made result records."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from doctune.core.evaluate.report_html import SYSTEM_COLOURS, render_html
from doctune.core.evaluate.summary import summarize

CHROMIUM = Path("/usr/bin/chromium")


def mc_record(qid: str, system: str, likelihood_right: bool, letter: str | None, doc: str = "d1") -> dict:
    return {"question_id": qid, "system": system, "kind": "mc", "doc_id": doc, "doc_title": f"Doc {doc}",
            "question": f"Question {qid}?", "options": ["w", "x", "y", "z"], "expected": "A", "reference": "w",
            "answer": letter or "no idea", "ttft_s": 0.01, "total_s": 0.1, "context_tokens": 50 if "rag" in system else 20,
            "rss_mb": 300.0, "sources": [{"chunk_id": "c1", "doc_title": "Doc", "text": "passage <b>", "page_start": 2}],
            "mc": {"letter": letter, "letter_correct": letter == "A", "likelihood_letter": "A" if likelihood_right else "B",
                   "likelihood_correct": likelihood_right}}


def open_record(qid: str, system: str, verdict: str | None, f1: float, doc: str = "d2") -> dict:
    return {"question_id": qid, "system": system, "kind": "open", "doc_id": doc, "doc_title": f"Doc {doc}",
            "question": f"Open {qid}?", "expected": "the answer", "answer": "an answer", "ttft_s": 0.02, "total_s": 0.3,
            "context_tokens": 10, "rss_mb": 310.0, "sources": [],
            "open": {"f1": f1, "verdict": verdict, "reason": "because", "judge_attempts": 1}}


@pytest.fixture
def records() -> list[dict]:
    made = []
    # 20 MC questions: tuned right on 16 by likelihood, base+rag on 10; 8 questions only tuned right, 2 only base+rag.
    for i in range(20):
        qid = f"m{i:02d}"
        tuned_right = i < 16
        rag_right = i < 8 or 16 <= i < 18
        made.append(mc_record(qid, "tuned", tuned_right, "A" if i < 12 else (None if i < 15 else "C"), doc="d1" if i < 10 else "d3"))
        made.append(mc_record(qid, "base+rag", rag_right, "A" if rag_right else "B", doc="d1" if i < 10 else "d3"))
    verdicts = ["correct", "correct", "partial", "incorrect", None]
    for i, verdict in enumerate(verdicts):
        made.append(open_record(f"o{i}", "tuned", verdict, 0.5))
        made.append(open_record(f"o{i}", "base+rag", "incorrect" if verdict else None, 0.25))
    return made


def build_summary(records: list[dict]) -> dict:
    question_ids = sorted({r["question_id"] for r in records})
    return summarize(records, eval_id="20260101-000000", systems=["base", "tuned", "base+rag"],
                     question_ids=question_ids, skipped={"base": "no base model: student not set"},
                     comparisons=[("tuned", "base+rag"), ("tuned", "base")], extra={"complete": False})


def test_summary_counts_intervals_and_paired_tests(records):
    summary = build_summary(records)
    assert summary["systems"] == ["tuned", "base+rag"]  # base had no records
    assert summary["skipped"] == {"base": "no base model: student not set"}
    assert summary["questions"] == {"total": 25, "mc": 20, "open": 5}
    tuned = summary["scores"]["tuned"]
    assert tuned["mc_likelihood"]["correct"] == 16 and tuned["mc_likelihood"]["accuracy"] == 0.8
    low, high = tuned["mc_likelihood"]["ci95"]
    assert low == pytest.approx(0.5840, abs=1e-3) and high == pytest.approx(0.9193, abs=1e-3)
    assert tuned["mc_letter"]["correct"] == 12 and tuned["mc_letter"]["unparseable"] == 3
    assert tuned["mc_letter"]["parseable_accuracy"] == pytest.approx(12 / 17, abs=1e-4)
    judge = tuned["open_judge"]
    assert (judge["n"], judge["correct"], judge["partial"], judge["incorrect"], judge["unjudged"]) == (4, 2, 1, 1, 1)
    assert judge["partial_credit"] == pytest.approx(2.5 / 4)
    assert tuned["open_f1"]["mean"] == 0.5
    assert tuned["memory_peak_mb"] == 310.0
    assert summary["scores"]["base+rag"]["context_tokens"]["mean"] == pytest.approx((20 * 50 + 5 * 10) / 25)

    (comparison,) = summary["comparisons"]  # tuned vs base is dropped: base was not scored
    mc = comparison["metrics"]["mc_likelihood"]
    assert mc["n"] == 20 and mc["mcnemar"]["only_a"] == 8 and mc["mcnemar"]["only_b"] == 2
    assert mc["mcnemar"]["p_value"] == pytest.approx(2 * (1 + 10 + 45) / 1024, abs=1e-6)
    assert mc["bootstrap"]["difference"] == pytest.approx(0.3)
    judged = comparison["metrics"]["open_judge"]
    assert judged["n"] == 4  # the question unjudged for both is left out

    per_doc = summary["per_document"]
    assert [d["title"] for d in per_doc.values()] == ["Doc d1", "Doc d2", "Doc d3"]
    assert per_doc["d1"]["systems"]["tuned"]["mc_likelihood"]["correct"] == 10


def test_report_is_self_contained_and_escapes_text(records):
    records[0]["answer"] = "<script>alert(1)</script>"
    html = render_html(build_summary(records), records, "Sample")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "id='scoreboard'" in html and "id='comparisons'" in html
    assert html.count("data:image/png;base64,") == 3  # scoreboard chart + two per-document charts
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the report must not load anything from the network"
    assert "skipped: no base model" in html
    assert "80.0%" in html


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium (/usr/bin/chromium): apt-get install -y chromium")
def test_report_renders_in_headless_chromium(records, tmp_path):
    from PIL import Image

    page = tmp_path / "report.html"
    page.write_text(render_html(build_summary(records), records, "Sample"), encoding="utf-8")
    shot = tmp_path / "shot.png"
    completed = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr",
         "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'profile'}",
         "--window-size=1200,1400", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert shot.exists(), completed.stderr[-2000:]
    assert "CONSOLE" not in completed.stderr and "Uncaught" not in completed.stderr, completed.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    colours = {image.getpixel((x, y)) for x in range(0, image.width, 3) for y in range(0, image.height, 3)}
    for system in ("tuned", "base+rag"):  # the chart's bars are on the page
        wanted = tuple(int(SYSTEM_COLOURS[system][i:i + 2], 16) for i in (1, 3, 5))
        assert any(sum(abs(a - b) for a, b in zip(c, wanted)) < 12 for c in colours), f"no {system} bar in the screenshot"
    dom = subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
                          f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert 'id="scoreboard"' in dom and 'id="chart-scoreboard"' in dom
