"""Training runs and their exports, as the project's files record them.

Torch-free (only the standard library and the project layer, ``core.records``),
so the window and quick commands can find the newest run or the ready model
file without loading the training stack. ``core.train`` and ``core.export`` use
these readers too, so every part agrees on which run is the latest:

- a run's ``RunSummary`` says "complete" once its adapter is in place, and when it finished;
- its ``ExportManifest`` lists each format's file, "ready" only once verified, and when it finished.

"Latest" means the newest ``finished_at`` recorded in the file (the run folder's
name breaks ties), not the file's modification time, which copying or touching
a project changes.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from doctune.core.records import ExportedFile, ExportLayout, ExportManifest, RunConfig, RunLayout, RunSummary

# A run id is one plain folder name: letters, digits, '-', '_' and '.', starting with a letter or digit. It can
# name no other folder ('..', '/', an absolute path) and break no generated file (quotes, spaces, new lines).
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class RunIdError(ValueError):
    """A run id that is not a plain folder name under the project's ``runs/``."""


def is_valid_run_id(run_id: str) -> bool:
    return isinstance(run_id, str) and RUN_ID.fullmatch(run_id) is not None


def check_run_id(run_id: str) -> str:
    """``run_id`` itself when it is a valid run id, else ``RunIdError`` saying what a run id may hold."""
    if not is_valid_run_id(run_id):
        raise RunIdError(f"'{run_id}' is not a run id: a run id is the name of a folder under the project's runs/ "
                         "(letters, digits, '-', '_' and '.'; no paths, spaces or quotes)")
    return run_id


def run_dir_of(runs_dir: str | os.PathLike, run_id: str) -> Path:
    """The folder of run ``run_id`` inside ``runs_dir``: ``RunIdError`` for anything but a valid run id, and for a
    run folder that is a link leading out of ``runs_dir``."""
    folder = Path(runs_dir) / check_run_id(run_id)
    if folder.is_symlink() and not folder.resolve().is_relative_to(Path(runs_dir).resolve()):
        raise RunIdError(f"The run folder {folder} is a link to {folder.resolve()}, outside the project's runs/; "
                         "only runs inside the project are used")
    return folder


def run_folders(runs_dir: str | os.PathLike) -> list[Path]:
    """Every run folder under ``runs_dir`` whose name is a valid run id (sorted by name; none when it does not
    exist). A folder with another name is not a run: nothing lists, exports or resumes it."""
    folder = Path(runs_dir)
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if is_valid_run_id(path.name) and path.is_dir())


def load_summary(run_dir: str | os.PathLike) -> RunSummary | None:
    """The run's summary, or None when it is missing, unreadable or not a run summary."""
    return RunSummary.load_or_none(RunLayout(Path(run_dir)).summary)


def read_summary(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run's summary as plain data (for display), or None when it is missing or unreadable."""
    summary = load_summary(run_dir)
    return summary.to_data() if summary is not None else None


def load_run_config(run_dir: str | os.PathLike) -> RunConfig | None:
    """The run's configuration, or None when it is missing or unreadable."""
    return RunConfig.load_or_none(RunLayout(Path(run_dir)).config)


def is_complete(run_dir: Path, summary: RunSummary | None) -> bool:
    return summary is not None and summary.complete and RunLayout(run_dir).adapter.is_dir()


COMPLETE, INTERRUPTED, UNUSABLE = "complete", "interrupted", "unusable"


def run_state(run_dir: Path) -> str:
    """``complete`` (finished, adapter in place), ``interrupted`` (started, resumable), or ``unusable``: not
    started properly (no config), a summary that cannot be read (its state is unknown), or a summary that says
    complete without the adapter. Nothing offers to resume an unusable run, and nothing uses it as finished."""
    layout = RunLayout(run_dir)
    if not layout.config.is_file():
        return UNUSABLE
    if not layout.summary.exists():
        return INTERRUPTED
    summary = load_summary(run_dir)
    if summary is None:
        return UNUSABLE
    if not summary.complete:
        return INTERRUPTED
    return COMPLETE if layout.adapter.is_dir() else UNUSABLE


def latest_complete_summary(runs_dir: str | os.PathLike) -> tuple[Path, RunSummary] | None:
    """(folder, summary) of the most recently finished complete run, or None."""
    finished = [(run_dir, summary) for run_dir in run_folders(runs_dir)
                if is_complete(run_dir, summary := load_summary(run_dir)) and summary is not None]
    if not finished:
        return None
    return max(finished, key=lambda found: (found[1].finished_at or 0.0, found[0].name))


def latest_complete(runs_dir: str | os.PathLike) -> tuple[Path, dict[str, Any]] | None:
    """``latest_complete_summary`` with the summary as plain data (for display)."""
    found = latest_complete_summary(runs_dir)
    return (found[0], found[1].to_data()) if found else None


def latest_complete_run(project: Any) -> Path | None:
    """The most recently finished run folder of ``project`` whose summary says "complete"."""
    found = latest_complete(project.runs_dir)
    return found[0] if found else None


def export_dir(runs_dir: str | os.PathLike, run_id: str) -> Path:
    return RunLayout(Path(runs_dir) / run_id).export.folder


def load_manifest(out_dir: str | os.PathLike) -> ExportManifest | None:
    """The export folder's manifest, or None when it is missing, unreadable or lists no files."""
    return ExportManifest.load_or_none(ExportLayout(Path(out_dir)).manifest)


def read_manifest(out_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The export folder's manifest as plain data (for display), or None when it is missing or unreadable."""
    manifest = load_manifest(out_dir)
    return manifest.to_data() if manifest is not None else None


def ready_files(out_dir: str | os.PathLike) -> dict[str, Path]:
    """Format → file for every file the folder's manifest lists ready that is on disk at its recorded size
    (and, for a LoRA adapter, whose base GGUF is still there)."""
    return ready_in(out_dir, load_manifest(out_dir))


def ready_in(out_dir: str | os.PathLike, manifest: ExportManifest | None) -> dict[str, Path]:
    """``ready_files`` for a manifest already read (or just written) from ``out_dir``."""
    out_dir = Path(out_dir)
    found = {}
    for fmt, entry in (manifest.files if manifest is not None else {}).items():
        if entry.ready and entry.file:
            path = out_dir / entry.file
            base = adapter_base(out_dir, entry)  # a LoRA adapter is usable only beside the base it was verified on
            if path.is_file() and path.stat().st_size == entry.bytes and (base is None or base.is_file()):
                found[fmt] = path
    return found


def adapter_base(out_dir: str | os.PathLike, entry: ExportedFile | dict[str, Any]) -> Path | None:
    """The base GGUF a LoRA adapter's manifest entry (the record, or its plain data from ``read_manifest``) names,
    stored relative to the export folder; None for any other file."""
    if isinstance(entry, dict):
        entry = ExportedFile.model_validate(entry)
    return Path(os.path.normpath(Path(out_dir) / entry.base_gguf)) if entry.base_gguf else None


def ready_file(out_dir: str | os.PathLike, fmt: str) -> Path | None:
    """The file of ``fmt`` in ``out_dir`` if the manifest lists it ready and it is there."""
    return ready_files(out_dir).get(fmt)


def _exports(runs_dir: str | os.PathLike) -> list[tuple[float, str, Path, ExportManifest]]:
    """(finished_at — else started_at, run name, export folder, manifest) of every run's export."""
    found = []
    for run_dir in run_folders(runs_dir):
        folder = RunLayout(run_dir).export.folder
        manifest = load_manifest(folder)
        if manifest is not None:
            found.append((manifest.when(), run_dir.name, folder, manifest))
    return found


def latest_manifest(runs_dir: str | os.PathLike) -> Path | None:
    """The manifest of the most recent export (finished, else started), or None."""
    exports = _exports(runs_dir)
    return ExportLayout(max(exports, key=lambda export: export[:2])[2]).manifest if exports else None


def latest_ready_file(runs_dir: str | os.PathLike, fmt: str) -> Path | None:
    """The ready file of ``fmt`` from the most recently finished export that has one."""
    candidates = [(when, name, path) for when, name, folder, manifest in _exports(runs_dir)
                  if (path := ready_in(folder, manifest).get(fmt)) is not None]
    return max(candidates)[2] if candidates else None
