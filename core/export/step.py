"""``doctune export``: merge a run's adapter, write and verify GGUF files, write the Modelfile.

The format ``lora`` also writes the run's adapter as a GGUF LoRA adapter,
verified applied to the base model's F16 GGUF (cached in ``cache/base/``).
"""
from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from doctune.core.events import CancelToken, Events
from doctune.core.export.base import cached_base_gguf
from doctune.core.export.errors import ExportError, disk_errors, safetensors_bytes
from doctune.core.export.folder import LoraSource, export_folder, gguf_name
from doctune.core.export.lora_gguf import LoraAdapterUnsupported, check_adapter_expressible
from doctune.core.export.merge import base_folder, merge_run, read_run
from doctune.core.export.modelfile import modelfile_text, usage_text
from doctune.core.fsio import atomic_write_text
from doctune.core.gguf_files import LORA, normalise_export_format, run_export_dir
from doctune.core.records import ExportLayout, ExportManifest, RunConfig, RunLayout, RunSummary
from doctune.core.runs import RunIdError, adapter_base, ready_in, run_dir_of, run_folders

PREFERRED_FOR_USE = ("q8_0", "q4_k_m", "f16")


class ExportParams(BaseModel):
    """What ``run`` needs; checked before any model loads."""

    model_config = ConfigDict(extra="forbid")

    project_dir: Path = Field(description="The project folder.")
    run_id: str | None = Field(None, description="Training run to export; default: the latest complete run.")
    formats: list[str] | None = Field(
        None, description="GGUF formats, plus 'lora' for the adapter as a GGUF LoRA adapter; "
                          "default: [export] formats.")

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("give at least one format")
        return list(dict.fromkeys(normalise_export_format(fmt) for fmt in value))


class ExportResult(BaseModel):
    run_id: str
    export_dir: Path
    files: dict[str, Path]
    ready: dict[str, bool]
    modelfile: Path | None
    usage: str
    seconds: float = 0.0

    @property
    def all_ready(self) -> bool:
        return all(self.ready.values())

    def message(self) -> str:
        formats = ", ".join(f"{fmt} {'ready' if ok else 'FAILED'}" for fmt, ok in self.ready.items())
        return f"Exported run {self.run_id}: {formats} in {self.seconds:.0f} s ({self.export_dir})"


def _choose_run(project, run_id: str | None) -> Path:
    from doctune.core.train import latest_complete_run

    if run_id:
        try:
            run_dir = run_dir_of(project.runs_dir, run_id)
        except RunIdError as exc:
            raise ExportError(f"Cannot export: {exc}.", _runs_hint(project)) from None
        if not run_dir.is_dir():
            raise ExportError(f"There is no training run '{run_id}' in {project.runs_dir}.", _runs_hint(project))
        return run_dir
    run_dir = latest_complete_run(project)
    if run_dir is None:
        raise ExportError("This project has no finished training run to export.", "Train one with 'doctune train'.",
                          "Press Train on the Train page first; Export uses the newest finished run.")
    return run_dir


def _runs_hint(project) -> str:
    names = [folder.name for folder in run_folders(project.runs_dir)]
    if not names:
        return "This project has no training runs yet; train one with 'doctune train'."
    shown = ", ".join(names[-5:]) + (f" (and {len(names) - 5} older)" if len(names) > 5 else "")
    return f"Pass one of the runs in {project.runs_dir}: {shown}; or omit --run to export the latest finished one."


def run(params: ExportParams, *, events: Events, cancel: CancelToken) -> ExportResult:
    from doctune.core.project import Project

    project = Project.open(params.project_dir)
    settings = project.config.export
    formats = params.formats or list(dict.fromkeys(normalise_export_format(fmt) for fmt in settings.formats))
    run_dir = _choose_run(project, params.run_id)
    summary, config = read_run(run_dir)  # a clear error for an unfinished run before anything is written
    events = events.child("export")
    if LORA in formats:
        formats = _expressible_formats(run_dir, formats, events)  # refused before any model loads
    export_dir = run_export_dir(project, run_dir.name)
    started = time.monotonic()
    with disk_errors("export folder", export_dir):
        export_dir.mkdir(parents=True, exist_ok=True)
    base_dir = base_folder(summary, config, project.config.privacy.offline, events.child("export.merge"),
                           current_student=project.config.student)
    merged = merge_run(run_dir, ExportLayout(export_dir).merged, merge_dtype=settings.merge_dtype, events=events,
                       cancel=cancel, base_dir=base_dir)
    stem = f"doctune-{run_dir.name}"
    with disk_errors("GGUF files", export_dir, need_bytes=lambda: safetensors_bytes(merged) * len(formats)):
        manifest = export_folder(merged, export_dir, formats, stem=stem, settings=settings, events=events,
                                 cancel=cancel, extra={"kind": "tuned", "run_id": run_dir.name},
                                 lora=(_lora_source(project, run_dir, summary, config, base_dir, events, cancel)
                                       if LORA in formats else None))
    ready = {fmt: fmt in manifest.files and manifest.files[fmt].ready for fmt in formats}
    files = {fmt: export_dir / gguf_name(stem, fmt) for fmt in formats}
    modelfile, usage = _write_instructions(export_dir, merged, stem, manifest)
    seconds = time.monotonic() - started
    return ExportResult(seconds=seconds, run_id=run_dir.name, export_dir=export_dir, files=files, ready=ready,
                        modelfile=modelfile, usage=usage)


def _lora_source(project, run_dir: Path, summary: RunSummary, config: RunConfig, base_dir: Path, events: Events,
                 cancel: CancelToken) -> LoraSource:
    """The run's adapter and the base model it was trained on (whose F16 GGUF is cached like ``base_gguf``'s)."""
    student = config.student
    name = summary.base_model or student.get("model") or str(base_dir)

    def base_f16() -> Path:
        return cached_base_gguf(project, name, student.get("revision", ""), lambda: base_dir, "f16", events, cancel)

    return LoraSource(adapter_dir=RunLayout(run_dir).adapter, base_dir=base_dir, base_f16=base_f16)


def _expressible_formats(run_dir: Path, formats: list[str], events: Events) -> list[str]:
    """``formats`` without ``lora`` when the run's adapter cannot be written as a GGUF adapter: the merged
    files are still exported (warned). Asked for the adapter alone, the refusal stands."""
    try:
        check_adapter_expressible(RunLayout(run_dir).adapter)
    except LoraAdapterUnsupported as exc:
        others = [fmt for fmt in formats if fmt != LORA]
        if not others:
            raise
        events.warning(f"No LoRA adapter file for run {run_dir.name}: {exc} Exporting {', '.join(others)} only.")
        return others
    return formats


def _write_instructions(export_dir: Path, merged: Path, stem: str, manifest: ExportManifest) -> tuple[Path | None, str]:
    """Modelfile and USAGE.txt for the best ready file in the folder (also from an earlier export) and the ready
    LoRA adapter; none when nothing there passed."""
    ready = ready_in(export_dir, manifest)
    models = [fmt for fmt in ready if fmt != LORA]
    ordered = [fmt for fmt in PREFERRED_FOR_USE if fmt in models] + [f for f in models if f not in PREFERRED_FOR_USE]
    chosen = ready[ordered[0]] if ordered else None
    adapter = ready.get(LORA)
    base = adapter_base(export_dir, manifest.files[LORA]) if adapter is not None else None
    layout = ExportLayout(export_dir)
    modelfile = layout.modelfile
    if chosen is None:
        modelfile.unlink(missing_ok=True)
    if chosen is None and adapter is None:
        layout.usage.unlink(missing_ok=True)
        return None, f"No file passed verification; see {layout.verification_text.name}."
    text, style = modelfile_text(chosen.name, merged) if chosen is not None else (None, None)
    usage = usage_text(stem, export_dir, chosen, style, lora=(adapter, base) if adapter and base else None)
    with disk_errors("Modelfile", export_dir):
        if text is not None:
            atomic_write_text(modelfile, text)
        atomic_write_text(layout.usage, usage)
    return (modelfile if text is not None else None), usage
