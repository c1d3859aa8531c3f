"""The records of an export folder: the manifest and the verification report."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from doctune.core.records.base import Record


class ExportedFile(BaseModel):
    """One format's entry in the manifest; ``ready`` only once the file passed verification."""

    model_config = ConfigDict(extra="allow")

    file: str | None = None
    bytes: int | None = None
    ready: bool = False
    verification: dict[str, Any] | None = None
    base_gguf: str | None = Field(None, description="For a LoRA adapter: its base GGUF, relative to the folder.")
    error: str | None = Field(None, description="Why the file could not be written or checked (the export stopped "
                                                "there); None when it was.")


class ExportManifest(Record):
    """``export/manifest.json``: what was exported from which source, and which files are ready.

    Extra keys name what was exported (``kind``, ``run_id``, ``student``…) and are kept as written.
    """

    WHAT = "export manifest"

    source: str | None = None
    source_fingerprint: str | None = None
    formats: list[str] = Field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None
    files: dict[str, ExportedFile]

    def when(self) -> float:
        """When this export finished, else when it started (0 when neither is known)."""
        return self.finished_at or self.started_at or 0.0


class VerificationReport(Record):
    """``export/verification.json``: each verified file's report (agreement, end of turn, speed)."""

    WHAT = "verification report"

    files: list[dict[str, Any]] = Field(default_factory=list)
