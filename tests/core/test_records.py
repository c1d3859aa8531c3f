"""The project layer: each shared file is one versioned record that round-trips, reads older layouts, keeps
what a newer DocTune added, and names the file when it cannot be read."""
from __future__ import annotations

import json
import math
from typing import Any, ClassVar

import pytest

from doctune.core.records import (
    CheckpointPointer,
    DocumentsSnapshot,
    EvalAnswer,
    EvalJudgment,
    EvalMeta,
    EvalSummary,
    ExportManifest,
    MetricRecord,
    ProjectLayout,
    Record,
    RecordError,
    RunConfig,
    RunLayout,
    RunSummary,
    SynthOutcome,
    TeacherSpeed,
    VerificationReport,
    mark_deleted,
    read_deleted_ids,
    read_records,
    write_records,
)

EXAMPLES: list[Record] = [
    RunConfig(run_id="r1", student={"model": "m"}, train={"epochs": 1.0}, data={"items_fingerprint": "abc"}),
    RunSummary(status="complete", run_id="r1", final_loss=0.25, finished_at=12.0),
    CheckpointPointer(step=4, folder="step-00000004"),
    ExportManifest(source="/m", files={"q8_0": {"file": "x-q8_0.gguf", "bytes": 3, "ready": True,
                                                "verification": {"passed": True}}}, kind="tuned"),
    VerificationReport(files=[{"format": "f16", "passed": True}]),
    SynthOutcome(id="t1", outcome="filtered", reason="too short"),
    TeacherSpeed(teacher="local", tokens_per_s=50.0, seconds_per_call=2.0),
    EvalMeta(eval_id="20260101-000000", fingerprint="f", systems=["base", "tuned"]),
    EvalAnswer(question_id="q1", system="tuned", kind="mc", answer="B", mc={"correct": True}),
    EvalJudgment(question_id="q1", system="tuned", verdict=True, reason="same", attempts=1),
    EvalSummary(eval_id="e", systems=["tuned"], scores={"tuned": {"mc": {"accuracy": 1.0}}}),
    DocumentsSnapshot(table_version=3, rows=[{"id": "d", "name": "a.md"}]),
]


@pytest.mark.parametrize("record", EXAMPLES, ids=lambda record: type(record).__name__)
def test_each_record_round_trips_through_its_file_with_its_version(record, tmp_path):
    path = tmp_path / "record.json"
    record.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["schema_version"] == type(record).VERSION
    again = type(record).load(path)
    assert again == record and again.to_data() == data


def test_a_file_written_before_versions_loads_as_version_one(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text('{"status": "complete", "finished_at": 5}', encoding="utf-8")
    summary = RunSummary.load(path)
    assert summary.complete and summary.finished_at == 5.0 and summary.schema_version == 1


class _Renamed(Record):
    """A record whose version 2 renamed ``n`` to ``count``: the upgrade hook reads version-1 files."""

    VERSION: ClassVar[int] = 2
    count: int

    @classmethod
    def upgrade(cls, data: dict[str, Any], version: int) -> dict[str, Any]:
        if version < 2:
            data["count"] = data.pop("n")
        return data


def test_an_older_version_is_upgraded_when_loaded_and_saved_in_the_current_one(tmp_path):
    path = tmp_path / "old.json"
    path.write_text('{"schema_version": 1, "n": 7}', encoding="utf-8")
    record = _Renamed.load(path)
    assert record.count == 7 and record.schema_version == 2
    record.save(path)
    assert json.loads(path.read_text(encoding="utf-8")) == {"schema_version": 2, "count": 7}


def test_a_newer_version_keeps_its_unknown_keys_when_saved_again(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"schema_version": 9, "files": {"f16": {"file": "a.gguf", "ready": True,
                                                                      "signature": "s"}},
                                "added_later": [1, 2]}), encoding="utf-8")
    manifest = ExportManifest.load(path)
    assert manifest.files["f16"].ready and manifest.schema_version == 9
    manifest.finished_at = 1.0
    manifest.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["added_later"] == [1, 2] and data["files"]["f16"]["signature"] == "s" and data["schema_version"] == 9


@pytest.mark.parametrize("text, reason", [
    ('{"status": "comp', "not valid JSON"),
    ("[1, 2]", "not an object"),
    ('{"schema_version": "one"}', "schema_version"),
    ('{"step": "many", "folder": "x"}', "step"),
])
def test_a_corrupt_file_names_the_file_and_what_to_do(tmp_path, text, reason):
    path = tmp_path / "runs" / "r1" / "checkpoints" / "latest.json"
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RecordError) as caught:
        CheckpointPointer.load(path)
    message = str(caught.value)
    assert str(path) in message and reason in message and "latest checkpoint pointer" in message
    assert "Delete it" in message
    assert CheckpointPointer.load_or_none(path) is None
    assert CheckpointPointer.load_or_none(tmp_path / "missing.json") is None
    with pytest.raises(FileNotFoundError):
        CheckpointPointer.load(tmp_path / "missing.json")


def test_a_newer_file_that_no_longer_fits_says_it_was_written_by_a_newer_doctune(tmp_path):
    path = tmp_path / "step.json"
    path.write_text('{"schema_version": 4, "step": "later"}', encoding="utf-8")
    with pytest.raises(RecordError, match="written by a newer DocTune: version 4"):
        CheckpointPointer.load(path)


def test_a_jsonl_of_records_skips_torn_and_foreign_lines_and_keeps_nan(tmp_path):
    path = tmp_path / "metrics.jsonl"
    write_records(path, [MetricRecord(time=1.0, step=1, loss=float("nan")), MetricRecord(time=2.0, step=2)])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"no": "step"}\n{"time": 3.0, "step": 3')  # a foreign line, then a torn one
    steps = list(read_records(MetricRecord, path))
    assert [record.step for record in steps] == [1, 2] and math.isnan(steps[0].loss)


def test_the_layout_names_every_shared_file_under_the_project(tmp_path):
    layout = ProjectLayout(tmp_path)
    run = layout.run("r1")
    assert run == RunLayout(tmp_path / "runs" / "r1")
    paths = [layout.items, layout.deleted_items, layout.item_outcomes, layout.questions, layout.question_outcomes,
             layout.teacher_speed, layout.teacher_check, layout.documents_snapshot, layout.documents_table, run.config, run.summary,
             run.metrics, run.latest_checkpoint, run.adapter, run.export.manifest, run.export.verification,
             layout.evaluation("e1").results, layout.evaluation("e1").summary]
    assert len(set(paths)) == len(paths) and all(path.is_relative_to(tmp_path) for path in paths)


def test_deleted_items_are_recorded_and_read_back(tmp_path):
    layout = ProjectLayout(tmp_path)
    assert read_deleted_ids(layout) == set()
    mark_deleted(layout, ["a", "b"])
    mark_deleted(layout, ["b"])
    assert read_deleted_ids(layout) == {"a", "b"}
