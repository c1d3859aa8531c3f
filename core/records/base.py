"""One typed, versioned record per file that steps share.

Every such file (a run's summary, an export manifest, an evaluation's
summary, …) is described by one pydantic model here, and only that model reads
or writes it. Each record carries ``schema_version``; loading tolerates:

- an older version, through the record's ``upgrade`` hook (a file without a
  version is taken as version 1, the first layout DocTune wrote);
- a newer version whose known fields still validate (new versions only add
  fields), keeping the unknown keys so that saving it again loses nothing.

A file that cannot be read or parsed raises ``RecordError`` naming the file and
what to do; ``load_or_none`` is for the readers that treat such a file as
absent (a summary being written by another process, a half-copied project).
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from doctune.core.fsio import SCHEMA_KEY, JsonlAppender, atomic_write_json, atomic_write_text, read_jsonl

R = TypeVar("R", bound="Record")


class RecordError(ValueError):
    """A shared project file that cannot be read as its record; the message names the file and what to do."""

    def __init__(self, path: str | os.PathLike[str], reason: str, what: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"The {what} {self.path} cannot be read: {reason}. Delete it (DocTune writes it again "
                         "when the step that makes it runs) or restore it from a backup.")


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in error['loc']) or 'value'}: {error['msg']}"
                     for error in exc.errors()[:3])


class Record(BaseModel):
    """A JSON document (or one JSONL line) shared between steps, with its schema version.

    Subclasses set ``VERSION`` (the layout they write) and ``WHAT`` (how an error names the file), and override
    ``upgrade`` when a version changes the meaning of a field.
    """

    model_config = ConfigDict(extra="allow", validate_assignment=False, populate_by_name=True)

    VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "file"

    schema_version: int = Field(1, description="Layout version this record was written in.")

    def model_post_init(self, context: Any, /) -> None:
        if SCHEMA_KEY not in self.model_fields_set:
            self.schema_version = self.VERSION

    # ----- versions ------------------------------------------------------------------------------------------
    @classmethod
    def upgrade(cls, data: dict[str, Any], version: int) -> dict[str, Any]:
        """``data`` as written in the older layout ``version``, rewritten in this one (none so far)."""
        return data

    @classmethod
    def from_data(cls: type[R], data: Any, source: str | os.PathLike[str] = "") -> R:
        """The record of a parsed JSON object; ``RecordError`` (naming ``source``) when it is not one."""
        if not isinstance(data, dict):
            raise RecordError(source, f"it holds a JSON {type(data).__name__}, not an object", cls.WHAT)
        version = data.get(SCHEMA_KEY, 1)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise RecordError(source, f"its schema_version is {version!r}, not a whole number", cls.WHAT)
        if version < cls.VERSION:
            data = {**cls.upgrade(dict(data), version), SCHEMA_KEY: cls.VERSION}
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            newer = f" (it was written by a newer DocTune: version {version})" if version > cls.VERSION else ""
            raise RecordError(source, _problems(exc) + newer, cls.WHAT) from None

    # ----- whole JSON files ----------------------------------------------------------------------------------
    @classmethod
    def load(cls: type[R], path: str | os.PathLike[str]) -> R:
        """The record in ``path``: ``FileNotFoundError`` when there is none, ``RecordError`` when it is unusable."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise
        except (OSError, UnicodeDecodeError) as exc:
            raise RecordError(path, getattr(exc, "strerror", None) or str(exc), cls.WHAT) from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RecordError(path, f"it is not valid JSON ({exc})", cls.WHAT) from None
        return cls.from_data(data, path)

    @classmethod
    def load_or_none(cls: type[R], path: str | os.PathLike[str]) -> R | None:
        """The record in ``path``, or None when it is missing, unreadable or not this record."""
        try:
            return cls.load(path)
        except (OSError, RecordError):
            return None

    def to_data(self) -> dict[str, Any]:
        """The JSON object this record is saved as: its version and the fields it was given or read with (a
        field left at its default is not written, so a record read and saved again keeps its keys)."""
        return {SCHEMA_KEY: self.schema_version, **self.model_dump(exclude_unset=True)}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the record to ``path`` atomically (all of it, or the old file unchanged)."""
        return atomic_write_json(path, self.to_data())


# ----- JSONL files of records ------------------------------------------------------------------------------

def read_records(cls: type[R], path: str | os.PathLike[str]) -> Iterator[R]:
    """Each complete line of ``path`` that is a ``cls`` record (a torn or foreign line is skipped, as
    ``fsio.read_jsonl`` does for torn lines)."""
    for data in read_jsonl(path):
        try:
            yield cls.from_data(data, path)
        except RecordError:
            continue


def write_records(path: str | os.PathLike[str], records: list[R]) -> Path:
    """Rewrite the JSONL file ``path`` with ``records``, atomically."""
    lines = [json.dumps(record.to_data(), ensure_ascii=False, default=str) + "\n" for record in records]
    return atomic_write_text(path, "".join(lines))


def append_records(log: JsonlAppender, records: list[R]) -> None:
    """Append ``records`` to an open JSONL log, one flushed line each."""
    log.append_many(record.to_data() for record in records)
