"""What a training run needs, validated before any model loads."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from doctune.core.config import StudentSettings, TrainSettings


class TrainParams(BaseModel):
    """Parameters of ``doctune.core.train.run``.

    ``student`` and ``train`` override the project's ``[student]`` and
    ``[train]`` settings field by field; a resumed run ignores them and uses
    the settings it started with.
    """

    model_config = ConfigDict(extra="forbid")

    project_dir: Path = Field(description="The project folder.")
    items_file: Path | None = Field(None, description="A JSONL of training items instead of the project's generated items.")
    resume: str | None = Field(None, description="Run id to continue from its last checkpoint.")
    student: dict[str, Any] = Field(default_factory=dict, description="Overrides of [student] settings.")
    train: dict[str, Any] = Field(default_factory=dict, description="Overrides of [train] settings.")


class TrainResult(BaseModel):
    run_id: str
    run_dir: Path
    adapter_dir: Path
    steps: int
    final_loss: float
    tokens: int
    seconds: float
    reports: bool = True
    """Whether this process reports the run (the main one of a run on several processes)."""

    def message(self) -> str:
        return f"Trained {self.run_id}: {self.steps} steps, final loss {self.final_loss:.4f}"


def resolve_settings(project_student: StudentSettings, project_train: TrainSettings,
                     params: TrainParams) -> tuple[StudentSettings, TrainSettings]:
    """Project settings with the run's overrides applied; a bad value raises a ``ConfigError``. A run on another
    student than the project's takes the training settings that student's folder recommends
    (``doctune.core.students``), under the run's own overrides."""
    from pydantic import ValidationError

    from doctune.core.config import ConfigError, _describe
    from doctune.core.students import recommended_train

    chosen = params.student.get("model")
    recommended = recommended_train(chosen) if chosen and chosen != project_student.model else {}
    try:
        student = StudentSettings.model_validate({**project_student.model_dump(), **params.student})
        train = TrainSettings.model_validate({**project_train.model_dump(), **recommended, **params.train})
    except ValidationError as exc:
        raise ConfigError("training settings", [_describe(e) for e in exc.errors()]) from None
    return student, train
