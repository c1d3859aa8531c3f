"""The project layer: the folder layout and one typed, versioned record per file that steps share.

No other module builds the paths of those files or reads their keys: a step
asks ``ProjectLayout`` (or ``RunLayout``, ``ExportLayout``, ``EvalLayout``)
where a file is, and loads or saves it as its record. Only the standard
library, pydantic and ``core.fsio`` are imported here, so the window and quick
commands can use it without loading any step.

Where a new record goes: a model in the module of the step that writes it
(``run``, ``export``, ``synth``, ``evaluate``, ``documents``), subclassing
``Record`` with its ``VERSION`` and ``WHAT``; its path goes in ``layout``.
"""
from __future__ import annotations

from doctune.core.records.base import Record, RecordError, append_records, read_records, write_records
from doctune.core.records.documents import DocumentsSnapshot
from doctune.core.records.evaluate import EvalAnswer, EvalJudgment, EvalMeta, EvalSummary
from doctune.core.records.export import ExportedFile, ExportManifest, VerificationReport
from doctune.core.records.layout import (
    CONFIG_NAME,
    SUBFOLDERS,
    EvalLayout,
    ExportLayout,
    ProjectLayout,
    RunLayout,
    checkpoint_step,
)
from doctune.core.records.run import (
    COMPLETE,
    CheckpointPointer,
    CheckpointStep,
    MetricRecord,
    RunConfig,
    RunData,
    RunSummary,
)
from doctune.core.records.synth import (
    DeletedItem,
    SynthOutcome,
    TeacherCheck,
    TeacherSpeed,
    mark_deleted,
    read_deleted_ids,
    settings_fingerprint,
    teacher_test_failed,
    unwritten_by_document,
)

__all__ = [
    "Record", "RecordError", "read_records", "write_records", "append_records",
    "ProjectLayout", "RunLayout", "ExportLayout", "EvalLayout", "checkpoint_step", "CONFIG_NAME", "SUBFOLDERS",
    "COMPLETE", "RunConfig", "RunData", "RunSummary", "CheckpointStep", "CheckpointPointer", "MetricRecord",
    "ExportManifest", "ExportedFile", "VerificationReport",
    "SynthOutcome", "DeletedItem", "TeacherSpeed", "mark_deleted", "read_deleted_ids",
    "unwritten_by_document", "TeacherCheck", "settings_fingerprint", "teacher_test_failed",
    "EvalMeta", "EvalAnswer", "EvalJudgment", "EvalSummary",
    "DocumentsSnapshot",
]
