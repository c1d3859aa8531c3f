"""The records of a training run: its configuration, checkpoints and summary.

Fields have defaults because readers must cope with runs written by older
versions or cut short (a config of ``{}`` still marks a run as started); the
writer in ``core.train`` always fills them.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from doctune.core.records.base import Record

COMPLETE = "complete"


class RunData(BaseModel):
    """What a run trains on, fingerprinted so that a resume can check the data did not change."""

    model_config = ConfigDict(extra="allow")

    items: int | None = None
    items_fingerprint: str | None = None
    plan_fingerprint: str | None = None
    total_steps: int | None = None
    epochs_planned: float | None = None
    mix: dict[str, Any] = Field(default_factory=dict)


class RunConfig(Record):
    """``runs/<id>/config.json``: every resolved setting of a run, written before its first step."""

    WHAT = "run configuration"

    run_id: str | None = None
    created_at: float | None = None
    student: dict[str, Any] = Field(default_factory=dict, description="The resolved [student] settings.")
    train: dict[str, Any] = Field(default_factory=dict, description="The resolved [train] settings.")
    project_train: dict[str, Any] | None = Field(
        None, description="The project's own [train] settings when the run started, before the run's options (a "
                          "preset chosen in the window); None in runs written before it was recorded.")
    base_model: str | None = None
    student_folder: str | None = None
    items_file: str | None = None
    data: RunData = Field(default_factory=RunData)
    device: str | None = None
    dtype: str | None = None
    world_size: int | None = None
    versions: dict[str, str] = Field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        """What makes a run up to date: the items it trained on, its student and the project's [train] settings
        it started from. A run given other settings as options (a preset in the window) is up to date while the
        project's own settings stay as they were: ``doctune run`` does not train it again with those."""
        train = self.project_train if self.project_train is not None else self.train
        return {"items_fingerprint": self.data.items_fingerprint, "student": self.student or None,
                "train": train or None}


class RunSummary(Record):
    """``runs/<id>/summary.json``: written last; ``status`` is "complete" once the adapter is in place."""

    WHAT = "run summary"

    status: str | None = None
    run_id: str | None = None
    base_model: str | None = None
    student_folder: str | None = None
    steps: int | None = None
    final_loss: float | None = None
    tokens: int | None = None
    tokens_this_session: int | None = None
    seconds_this_session: float | None = None
    world_size: int | None = None
    adapter: str | None = None
    finished_at: float | None = None

    @property
    def complete(self) -> bool:
        return self.status == COMPLETE


class CheckpointStep(Record):
    """``checkpoints/step-N/step.json``: the step a checkpoint holds, written last inside it."""

    WHAT = "checkpoint step file"

    step: int


class CheckpointPointer(Record):
    """``checkpoints/latest.json``: which checkpoint folder is the newest complete one."""

    WHAT = "latest checkpoint pointer"

    step: int
    folder: str


class MetricRecord(Record):
    """One line of ``runs/<id>/metrics.jsonl``: the numbers of one optimizer step."""

    WHAT = "training metrics"

    time: float
    step: int
    total_steps: int | None = None
    loss: float | None = None
    lr: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    tokens: int | None = None
