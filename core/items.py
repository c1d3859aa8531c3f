"""Training items and held-out evaluation questions: the schemas every step shares.

Project files (all append-only JSONL, one JSON object per line; where they
are is ``core.records.ProjectLayout``'s to say):

- the items: ``TrainingItem`` records written by synthesis;
- their outcomes: generations that wrote no item (``core.records.SynthOutcome``);
- the deleted items: ``{"id": ...}`` records of items the user deleted (``core.records.DeletedItem``);
- the held-out questions: ``EvalQuestion`` records, never trained on.

A ``TrainingItem`` is either

- ``kind="qa"``: ``messages`` is a chat (``[{"role": "user", "content": ...},
  {"role": "assistant", "content": ...}]``, optionally a leading system
  message). Training renders it with the student's own chat template and puts
  the loss on the assistant turns only.
- ``kind="document"``: ``text`` (with its ``title``) is continued-pretraining
  text; training prefixes the title and puts the loss on every token.

Reading is tolerant: a line that fails the schema is reported with its id and
skipped (``load_training_items_report``), never a crash.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from doctune.core.fsio import read_jsonl
from doctune.core.records import ProjectLayout, read_deleted_ids

ITEMS_SCHEMA_VERSION = 1
EVAL_SCHEMA_VERSION = 1


Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role = Field(description="Who speaks: system, user or assistant.")
    content: str = Field(min_length=1, description="What is said.")


class TrainingItem(BaseModel):
    """One unit of training data, produced by synthesis (or given as a JSONL file)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(ITEMS_SCHEMA_VERSION, description="Layout version of this record.")
    id: str = Field(min_length=1, description="Stable unique id (e.g. a hash of chunk, recipe and prompt).")
    kind: Literal["qa", "document"] = Field(description="qa: a chat; document: continued-pretraining text.")
    chunk_id: str = Field("", description="Source chunk id (empty for items not tied to a chunk).")
    doc_id: str = Field("", description="Source document id.")
    recipe: str = Field("", description="Synthesis recipe that made it (qa, focal, entigraph, wrap, …).")
    messages: list[Message] = Field(default_factory=list, description="qa: the chat, ending in an assistant turn.")
    text: str = Field("", description="document: the text to train on.")
    title: str = Field("", description="document: title of the source document, prefixed during training.")
    teacher: str = Field("", description="Teacher model that wrote it.")
    prompt_hash: str = Field("", description="Hash of the prompt that produced it (for de-duplication).")
    created_at: float = Field(default_factory=time.time, description="Seconds since the epoch.")
    meta: dict[str, Any] = Field(default_factory=dict, description="Anything else worth keeping.")

    @model_validator(mode="after")
    def _content_matches_kind(self) -> TrainingItem:
        if self.kind == "qa":
            if not self.messages:
                raise ValueError("a qa item needs 'messages'")
            if not any(m.role == "assistant" for m in self.messages):
                raise ValueError("a qa item needs at least one assistant message (the answer)")
            if self.messages[-1].role != "assistant":
                raise ValueError("a qa item must end with the assistant's answer")
        elif not self.text.strip():
            raise ValueError("a document item needs non-empty 'text'")
        return self

    def to_record(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class EvalQuestion(BaseModel):
    """A held-out question, scored for base, base+RAG, tuned and tuned+RAG."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(EVAL_SCHEMA_VERSION, description="Layout version of this record.")
    id: str = Field(min_length=1, description="Stable unique id.")
    kind: Literal["mc", "open"] = Field(description="mc: multiple choice, scored exactly; open: free answer.")
    question: str = Field(min_length=1, description="The question as asked.")
    options: list[str] = Field(default_factory=list, description="mc: exactly four options (A–D).")
    answer: str = Field(min_length=1, description="mc: the correct letter A–D; open: the reference answer text.")
    reference: str = Field("", description="Reference answer in words (mc: the correct option's text).")
    chunk_id: str = Field("", description="Source chunk id.")
    doc_id: str = Field("", description="Source document id.")
    source_text: str = Field("", description="The passage the question was written from.")
    created_at: float = Field(default_factory=time.time, description="Seconds since the epoch.")
    meta: dict[str, Any] = Field(default_factory=dict, description="Anything else worth keeping.")

    @model_validator(mode="after")
    def _options_match_kind(self) -> EvalQuestion:
        if self.kind == "mc":
            if len(self.options) != 4:
                raise ValueError(f"a multiple-choice question needs exactly 4 options, found {len(self.options)}")
            if self.answer not in ("A", "B", "C", "D"):
                raise ValueError(f"a multiple-choice answer is a letter A–D, found {self.answer!r}")
        return self

    def to_record(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


@dataclass
class SchemaProblem:
    """One record that failed the schema: where, which id (if any), and why."""

    line: int
    id: str
    reason: str


@dataclass
class LoadReport:
    """Items that passed the schema, and the ones that did not."""

    items: list[Any] = field(default_factory=list)
    problems: list[SchemaProblem] = field(default_factory=list)
    deleted: int = 0


def _reason(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "record"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _load(path: Path, model: type[BaseModel], skip_ids: set[str] = frozenset()) -> LoadReport:
    report = LoadReport()
    seen: set[str] = set()
    for line, record in enumerate(read_jsonl(path), start=1):
        record_id = str(record.get("id", ""))
        if record_id in skip_ids:
            report.deleted += 1
            continue
        try:
            item = model.model_validate(record)
        except ValidationError as exc:
            report.problems.append(SchemaProblem(line, record_id, _reason(exc)))
            continue
        if item.id in seen:  # append-only files may repeat an id after a retry; keep the first
            continue
        seen.add(item.id)
        report.items.append(item)
    return report


def items_path(project) -> Path:
    return ProjectLayout(Path(project.root)).items


def deleted_path(project) -> Path:
    return ProjectLayout(Path(project.root)).deleted_items


def failures_path(project) -> Path:
    return ProjectLayout(Path(project.root)).item_outcomes


def questions_path(project) -> Path:
    return ProjectLayout(Path(project.root)).questions


def deleted_ids(project) -> set[str]:
    return read_deleted_ids(ProjectLayout(Path(project.root)))


def read_items_file(path: str | Path, skip_ids: set[str] = frozenset()) -> LoadReport:
    """Parse a JSONL file of training items; bad records are listed, not raised."""
    return _load(Path(path), TrainingItem, skip_ids)


def load_training_items_report(project) -> LoadReport:
    """The project's training items minus the deleted ones, with the schema problems."""
    return read_items_file(items_path(project), deleted_ids(project))


def load_training_items(project) -> list[TrainingItem]:
    """The project's valid training items, without the ones the user deleted."""
    return load_training_items_report(project).items


def load_eval_questions_report(path: str | Path) -> LoadReport:
    return _load(Path(path), EvalQuestion)


def load_eval_questions(project) -> list[EvalQuestion]:
    """The project's valid held-out questions."""
    return load_eval_questions_report(questions_path(project)).items


def content_hash(*parts: Any) -> str:
    """A short stable id from any JSON-able parts (for item and question ids)."""
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


__all__ = [
    "Message", "TrainingItem", "EvalQuestion", "SchemaProblem", "LoadReport",
    "ITEMS_SCHEMA_VERSION", "EVAL_SCHEMA_VERSION",
    "items_path", "deleted_path", "failures_path", "questions_path", "deleted_ids",
    "read_items_file", "load_training_items", "load_training_items_report",
    "load_eval_questions", "load_eval_questions_report", "content_hash",
]
