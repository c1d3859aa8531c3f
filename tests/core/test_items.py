"""The shared item and question schemas: valid records load, bad ones are reported by id."""
from __future__ import annotations

import json

from doctune.core.fsio import JsonlAppender
from doctune.core.items import (
    EvalQuestion,
    TrainingItem,
    deleted_path,
    items_path,
    load_training_items,
    load_training_items_report,
)


def _qa(item_id: str) -> dict:
    return {"id": item_id, "kind": "qa", "chunk_id": "c1", "recipe": "qa",
            "messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]}


def test_load_applies_deletions_and_reports_bad_records(project):
    with JsonlAppender(items_path(project)) as log:
        log.append(_qa("a"))
        log.append({"id": "doc1", "kind": "document", "text": "Some text.", "title": "T"})
        log.append({"id": "bad1", "kind": "qa", "messages": []})
        log.append({"id": "bad2", "kind": "poem", "text": "x"})
        log.append(_qa("b"))
        log.append(_qa("a"))  # a repeated id is kept once
    with JsonlAppender(deleted_path(project)) as log:
        log.append({"id": "b"})
    report = load_training_items_report(project)
    assert [item.id for item in report.items] == ["a", "doc1"]
    assert [p.id for p in report.problems] == ["bad1", "bad2"]
    assert report.deleted == 1
    assert [item.id for item in load_training_items(project)] == ["a", "doc1"]


def test_records_round_trip_with_schema_version():
    item = TrainingItem.model_validate(_qa("x"))
    record = json.loads(json.dumps(item.to_record()))
    assert record["schema_version"] == 1
    assert TrainingItem.model_validate(record) == item


def test_eval_question_checks_options():
    ok = EvalQuestion(id="q", kind="mc", question="?", options=["a", "b", "c", "d"], answer="B")
    assert ok.answer == "B"
    try:
        EvalQuestion(id="q", kind="mc", question="?", options=["a"], answer="A")
    except ValueError as exc:
        assert "4 options" in str(exc)
    else:
        raise AssertionError("three missing options accepted")
