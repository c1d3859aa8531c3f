"""The records synthesis shares with the estimate and the window: outcomes, the teacher's speed and its last
test."""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from doctune.core.fsio import JsonlAppender, read_jsonl
from doctune.core.records.base import Record, read_records
from doctune.core.records.layout import ProjectLayout


class SynthOutcome(Record):
    """One line of ``synth/failures.jsonl`` (``eval/failures.jsonl``): a task that wrote no item, and why."""

    WHAT = "synthesis outcomes"

    id: str
    outcome: str  # "failed" or "filtered"
    reason: str
    detail: str = ""
    recipe: str | None = None
    chunk_id: str | None = None
    doc_id: str | None = None
    teacher: str | None = None
    time: float | None = None


class DeletedItem(BaseModel):
    """One line of ``synth/deleted.jsonl``: an item the user deleted (it stays in items.jsonl, unused)."""

    model_config = ConfigDict(extra="allow")

    id: str


def unwritten_by_document(layout: ProjectLayout, written: Iterable[str]) -> Counter[str]:
    """Per document id: the synthesis tasks whose last outcome was a failure or a filter and that have no item
    since (a failed task that a later run wrote is not counted)."""
    last: dict[str, SynthOutcome] = {}
    for record in read_records(SynthOutcome, layout.item_outcomes):
        last[record.id] = record
    done = set(written)
    return Counter(record.doc_id or "" for task_id, record in last.items() if task_id not in done)


def read_deleted_ids(layout: ProjectLayout) -> set[str]:
    """The ids of the items the user deleted."""
    found = set()
    for data in read_jsonl(layout.deleted_items):
        try:
            found.add(DeletedItem.model_validate({**data, "id": str(data.get("id", ""))}).id)
        except ValidationError:
            continue
    return found - {""}


def mark_deleted(layout: ProjectLayout, ids: Iterable[str]) -> None:
    """Record items as deleted (append-only: the items stay in their file and are skipped from now on)."""
    with JsonlAppender(layout.deleted_items) as log:
        log.append_many(DeletedItem(id=item_id).model_dump() for item_id in ids)


class TeacherSpeed(Record):
    """``cache/teacher-speed.json``: the teacher's last measured speed, for time estimates.

    ``source`` says what measured it: ``"generate"`` (a generation run: ``wall_seconds_per_call`` is its
    wall-clock time per teacher call with all its calls in flight together, the rate its live ETA measured) or
    ``"test"`` (the teacher test: one request alone, ``seconds_per_call`` only)."""

    WHAT = "measured teacher speed"

    teacher: str | None = None
    tokens_per_s: float | None = None
    seconds_per_call: float | None = None
    wall_seconds_per_call: float | None = None
    calls: int | None = None
    source: str | None = None
    measured_at: float | None = None


class TeacherCheck(Record):
    """``cache/teacher-check.json``: the last test of the teacher, for the settings it tested (``settings``:
    their ``settings_fingerprint``); a test of other settings says nothing about the present ones."""

    WHAT = "teacher test result"

    settings: str | None = None
    passed: bool = False
    message: str = ""
    tested_at: float | None = None


def settings_fingerprint(settings: dict[str, Any]) -> str:
    """A short fingerprint of a settings table (the project's [teacher] as plain data)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def teacher_test_failed(layout: ProjectLayout, settings: dict[str, Any]) -> bool:
    """Whether the last test of the teacher with exactly these ``settings`` failed."""
    check = TeacherCheck.load_or_none(layout.teacher_check)
    return check is not None and not check.passed and check.settings == settings_fingerprint(settings)
