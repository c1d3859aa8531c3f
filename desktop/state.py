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


def project_states(root: Path, teacher_configured: bool, teacher_failed: bool = False) -> dict[str, StepState]:
    """Each step's state. ``teacher_failed``: the last test of the present teacher settings failed (the teacher
    is then to do, not done). Export and Compare are done only when the last export has a file that passed its
    checks."""
    layout = ProjectLayout(root)
    docs = _mtime(layout.documents_table)
    items = _mtime(layout.items)
    run = latest_run(root)
    run_time = _mtime(RunLayout(run[0]).summary) if run else None
    manifest = latest_manifest(root)
    manifest_time = _mtime(manifest) if manifest else None
    nothing_ready = manifest is not None and not runs.ready_files(manifest.parent)
    evaluation = latest_eval_summary(root)
    eval_time = _mtime(evaluation) if evaluation else None

    def state(time: float | None, *inputs: float | None, detail: str = "") -> StepState:
        if time is None:
            return StepState(NOT_STARTED)
        if any(_after(source, time) for source in inputs):
            return StepState(STALE, "its inputs changed since it last ran")
        return StepState(DONE, detail)

    def exported() -> StepState:
        if nothing_ready:
            return StepState(NOT_STARTED, "the last export has no file that passed its checks")
        return state(manifest_time, run_time)

    if teacher_failed:
        teacher = StepState(NOT_STARTED, "its last test failed")
    else:
        teacher = StepState(DONE) if teacher_configured else StepState(NOT_STARTED)
    return {
        "documents": state(docs),
        "teacher": teacher,
        "synthesize": state(items, docs),
        "train": state(run_time, items, detail=run[0].name if run else ""),
        "export": exported(),
        "compare": exported(),
        "evaluate": state(eval_time, manifest_time),
    }
