"""Whether each step of a project is done, stale (its inputs changed since) or not started.

Judged from the project's files only (modification times and small JSON files), so it
is cheap enough to run on the event loop after every job.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from doctune.core import runs
from doctune.core.records import ProjectLayout, RunLayout

DONE, STALE, NOT_STARTED = "done", "stale", "not started"
STEPS = ("documents", "teacher", "synthesize", "train", "export", "compare", "evaluate")


@dataclass(frozen=True)
class StepState:
    state: str
    detail: str = ""


def _mtime(path: Path) -> float | None:
    """Newest modification time under ``path`` (a file or a folder), None if it does not exist."""
    if not path.exists():
        return None
    if path.is_file():
        return path.stat().st_mtime
    times = [p.stat().st_mtime for p in path.rglob("*") if p.is_file()]
    return max(times) if times else None


def latest_run(root: Path) -> tuple[Path, dict] | None:
    """(folder, summary) of the project's most recently finished complete training run."""
    return runs.latest_complete(ProjectLayout(root).runs)


def latest_manifest(root: Path) -> Path | None:
    """The manifest of the project's most recent export."""
    return runs.latest_manifest(ProjectLayout(root).runs)


def latest_eval_summary(root: Path) -> Path | None:
    found = sorted(ProjectLayout(root).eval_summaries(), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _after(newer: float | None, older: float | None) -> bool:
    return newer is not None and older is not None and newer > older + 1e-3


def project_states(root: Path, teacher_configured: bool) -> dict[str, StepState]:
    layout = ProjectLayout(root)
    docs = _mtime(layout.documents_table)
    items = _mtime(layout.items)
    run = latest_run(root)
    run_time = _mtime(RunLayout(run[0]).summary) if run else None
    manifest = latest_manifest(root)
    manifest_time = _mtime(manifest) if manifest else None
    evaluation = latest_eval_summary(root)
    eval_time = _mtime(evaluation) if evaluation else None

    def state(time: float | None, *inputs: float | None, detail: str = "") -> StepState:
        if time is None:
            return StepState(NOT_STARTED)
        if any(_after(source, time) for source in inputs):
            return StepState(STALE, "its inputs changed since it last ran")
        return StepState(DONE, detail)

    return {
        "documents": state(docs),
        "teacher": StepState(DONE) if teacher_configured else StepState(NOT_STARTED),
        "synthesize": state(items, docs),
        "train": state(run_time, items, detail=run[0].name if run else ""),
        "export": state(manifest_time, run_time),
        "compare": state(manifest_time, run_time),
        "evaluate": state(eval_time, manifest_time),
    }
