"""``doctune run``: the whole pipeline in order, headless.

Steps: ingest → index → synthesize → questions → train → export → evaluate →
report. Each step's own ``run`` skips work it has already done and resumes work
that was interrupted, so running the pipeline again only does what is new; a
step that has nothing to do says so and returns quickly. ``until`` stops after
the named step.

``open_teacher`` opens a project's teacher for the steps that need one (synthesis,
judging): the commands pass it to them too, since it also builds the kinds the
steps cannot, the knowledge lab's teacher among them.
"""
from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from doctune.core.errors import UserError
from doctune.core.events import CancelToken, Events
from doctune.core.records import RunConfig

if TYPE_CHECKING:  # pragma: no cover
    from doctune.core.teachers import Teacher

STEPS = ("ingest", "index", "synthesize", "questions", "train", "export", "evaluate", "report")


class PipelineStepMissing(UserError):
    """A step of the pipeline is not part of this installation."""


class PipelineParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project_dir: Path = Field(description="Project folder.")
    until: str | None = Field(None, description="Stop after this step.")
    add: list[Path] = Field(default_factory=list, description="Files or folders to ingest before the known ones.")


@dataclass
class StepOutcome:
    step: str
    status: str  # "done", "partial" (finished with some inputs failing), "skipped"
    seconds: float
    note: str = ""


@dataclass
class PipelineResult:
    outcomes: list[StepOutcome] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        return any(outcome.status == "partial" for outcome in self.outcomes)

    def message(self) -> str:
        done = ", ".join(f"{o.step} ({o.status})" for o in self.outcomes)
        return f"Pipeline finished: {done}."

    def as_dict(self) -> list[dict[str, Any]]:
        return [vars(outcome) for outcome in self.outcomes]


def _public(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise PipelineStepMissing(f"The pipeline needs {module}.{name}, which this installation lacks ({exc}).") from None


def _run_step(module: str, params_name: str, events: Events, cancel: CancelToken, *,
              options: dict[str, Any] | None = None, **params: Any) -> Any:
    """``module.run(params_name(**params), events=, cancel=, **options)``."""
    params_class = _public(module, params_name)
    return _public(module, "run")(params_class(**params), events=events, cancel=cancel, **(options or {}))


def _lab_teacher() -> Teacher:
    from doctune.core.lab.teacher import LabTeacher

    return LabTeacher()


# Teachers of kinds the steps cannot build: the lab's is made of synth, evaluate and teachers parts.
TEACHER_KINDS: dict[str, Callable[[], Teacher]] = {"lab": _lab_teacher}


def open_teacher(project, **options: Any) -> Teacher:
    """The project's teacher, of any kind: ``teachers.open_teacher`` (same ``options``) with ``TEACHER_KINDS``."""
    from doctune.core.teachers import open_teacher as open_step_teacher

    return open_step_teacher(project, kinds=TEACHER_KINDS, **options)


def step_ingest(project, params: PipelineParams, events: Events, cancel: CancelToken) -> tuple[str, str]:
    from doctune.core.store import list_documents

    known = [Path(doc["path"]) for doc in list_documents(project)]
    paths = [*params.add, *(path for path in known if path.exists())]
    if not paths:
        return "skipped", f"no documents yet: add some with doctune add FILES -p {project.root} or doctune run --add FILES"
    result = _run_step("doctune.core.ingest", "IngestParams", events, cancel, project_dir=project.root, paths=paths)
    failed = len(getattr(result, "failed", []) or [])
    return ("partial" if failed else "done"), f"{len(paths)} path(s) checked, {failed} failed"


def step_index(project, params: PipelineParams, events: Events, cancel: CancelToken) -> tuple[str, str]:
    result = _run_step("doctune.core.rag", "IndexParams", events, cancel, project_dir=project.root)
    return "done", f"{result.embedded} chunk(s) embedded, {result.unchanged} unchanged"


def _synth(project, events: Events, cancel: CancelToken, held_out: bool) -> tuple[str, str]:
    result = _run_step("doctune.core.synth", "SynthParams", events, cancel, options={"open_teacher": open_teacher},
                       project_dir=project.root, eval=held_out)
    note = f"{result.generated} new, {result.already_done} already done, {result.failed} failed"
    return ("partial" if result.failed else "done"), note


def step_synthesize(project, params: PipelineParams, events: Events, cancel: CancelToken) -> tuple[str, str]:
    return _synth(project, events, cancel, held_out=False)


def step_questions(project, params: PipelineParams, events: Events, cancel: CancelToken) -> tuple[str, str]:
    return _synth(project, events, cancel, held_out=True)


def _training_identity(project) -> dict[str, Any]:
    """What a finished run must have been trained with to be up to date: items, student, settings."""
    from doctune.core.items import load_training_items
    from doctune.core.train.data import items_fingerprint

    return {"items_fingerprint": items_fingerprint(load_training_items(project)),
            "student": project.config.student.model_dump(mode="json"),
            "train": project.config.train.model_dump(mode="json")}


def _interrupted_runs(project) -> list[tuple[Path, RunConfig]]:
    """Runs that can be resumed (``core.runs.run_state``), with their configs, newest first (run ids begin
    with their start time). A run whose config cannot be read is left out: it cannot be resumed.
    """
    from doctune.core.runs import INTERRUPTED, load_run_config, run_folders, run_state

    interrupted = []
    for run_dir in reversed(run_folders(project.runs_dir)):
        config = load_run_config(run_dir) if run_state(run_dir) == INTERRUPTED else None
        if config is not None:
            interrupted.append((run_dir, config))
    return interrupted


def _up_to_date_run(project, wanted: dict[str, Any]) -> Path | None:
    """The latest complete run, if it was trained with ``wanted`` (items, student, settings).

    Only the latest counts: export, chat and evaluation use the latest run, so an older run with the same
    settings (settings changed, then changed back) must not stand in for it.
    """
    from doctune.core.runs import latest_complete_run, load_run_config

    latest = latest_complete_run(project)
    config = load_run_config(latest) if latest is not None else None
    return latest if config is not None and config.identity() == wanted else None


def step_train(project, params: PipelineParams, events: Events, cancel: CancelToken) -> tuple[str, str]:
    wanted = _training_identity(project)
    current = _up_to_date_run(project, wanted)
    if current is not None:
        return "skipped", f"run {current.name} is up to date"
    resume = next((run_dir.name for run_dir, config in _interrupted_runs(project) if config.identity() == wanted),
                  None)
    result = _run_step("doctune.core.train", "TrainParams", events, cancel, project_dir=project.root, resume=resume)
    return "done", f"run {result.run_id}" + (" (resumed)" if resume else "")


def export_formats(project) -> list[str]:
    """The [export] formats, plus the one chat and evaluation run the tuned model in ([rag] gguf_format).

    Without it, a project exporting only (say) f16 while chatting in q8_0 would have its newest run skipped
    by the evaluation, or scored with an older run's q8_0 file.
    """
    from doctune.core.gguf_files import normalise_export_format

    formats = [*project.config.export.formats, project.config.rag.gguf_format]
    return list(dict.fromkeys(normalise_export_format(fmt) for fmt in formats))


def step_export(project, params: PipelineParams, events: Events, cancel: CancelToken) -> tuple[str, str]:
    from doctune.core.gguf_files import ready_gguf

    run_dir = _public("doctune.core.train", "latest_complete_run")(project)
    if run_dir is None:
        return "skipped", "no complete training run to export"
    formats = export_formats(project)
    if all(ready_gguf(project, run_id=run_dir.name, fmt=fmt) is not None for fmt in formats):
        return "skipped", f"run {run_dir.name} is exported ({', '.join(formats)})"
    result = _run_step("doctune.core.export", "ExportParams", events, cancel, project_dir=project.root,
                       run_id=run_dir.name, formats=formats)
    return ("done" if result.all_ready else "partial"), f"run {run_dir.name}: " + ", ".join(
        f"{fmt} {'ready' if ready else 'NOT ready'}" for fmt, ready in result.ready.items())


def step_evaluate(project, params: PipelineParams, events: Events, cancel: CancelToken) -> tuple[str, str]:
    from doctune.core.evaluate import EvalParams, run

    result = run(EvalParams(project_dir=project.root), events=events, cancel=cancel, open_teacher=open_teacher)
    skipped = "; ".join(f"{name}: {why}" for name, why in result.skipped.items())
    return ("partial" if result.skipped else "done"), f"evaluation {result.eval_id}" + (f" (skipped {skipped})" if skipped else "")


def step_report(project, params: PipelineParams, events: Events, cancel: CancelToken) -> tuple[str, str]:
    from doctune.core.evaluate import report

    return "done", str(report(project))


STEP_FUNCTIONS: dict[str, Callable[..., tuple[str, str]]] = {
    "ingest": step_ingest, "index": step_index, "synthesize": step_synthesize, "questions": step_questions,
    "train": step_train, "export": step_export, "evaluate": step_evaluate, "report": step_report,
}


def run(params: PipelineParams, *, events: Events, cancel: CancelToken) -> PipelineResult:
    """Run the steps in order up to ``params.until``; a fatal error in a step stops the pipeline."""
    from doctune.core.project import Project

    if params.until is not None and params.until not in STEPS:
        raise PipelineStepMissing(f"Unknown step '{params.until}'.", hint=f"Use one of: {', '.join(STEPS)}")
    project = Project.open(params.project_dir)
    last = STEPS.index(params.until) if params.until else len(STEPS) - 1
    result = PipelineResult()
    for step in STEPS[: last + 1]:
        cancel.raise_if_cancelled()
        events.log(f"Step {STEPS.index(step) + 1}/{len(STEPS)}: {step}")
        started = time.monotonic()
        status, note = STEP_FUNCTIONS[step](project, params, events.child(step), cancel)
        outcome = StepOutcome(step, status, round(time.monotonic() - started, 2), note)
        result.outcomes.append(outcome)
        events.log(f"{step}: {status}" + (f" — {note}" if note else ""), **vars(outcome))
    return result
