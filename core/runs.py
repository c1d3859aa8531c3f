"""Training runs and their exports, as the project's files record them.

Torch-free (only the standard library and ``fsio``), so the window and quick
commands can find the newest run or the ready model file without loading the
training stack. ``core.train`` and ``core.export`` use these readers too, so
every part agrees on which run is the latest::

    runs/<run_id>/summary.json          "status": "complete" once the adapter is in place, "finished_at"
    runs/<run_id>/adapter/              the finished LoRA adapter
    runs/<run_id>/export/manifest.json  each format's file, "ready": true only once verified, "finished_at"

"Latest" means the newest ``finished_at`` recorded in the file (the run folder's
name breaks ties), not the file's modification time, which copying or touching
a project changes.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from doctune.core.fsio import read_json_or_none

SUMMARY = "summary.json"
ADAPTER_DIR = "adapter"
EXPORT_DIR = "export"
MANIFEST = "manifest.json"
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


def _document(path: Path) -> dict[str, Any] | None:
    data = read_json_or_none(path)
    return data if isinstance(data, dict) else None


def _time(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


def run_folders(runs_dir: str | os.PathLike) -> list[Path]:
    """Every run folder under ``runs_dir`` whose name is a valid run id (sorted by name; none when it does not
    exist). A folder with another name is not a run: nothing lists, exports or resumes it."""
    folder = Path(runs_dir)
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if is_valid_run_id(path.name) and path.is_dir())


def read_summary(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run's ``summary.json``, or None when it is missing, unreadable or not a JSON object."""
    return _document(Path(run_dir) / SUMMARY)


def is_complete(run_dir: Path, summary: dict[str, Any] | None) -> bool:
    return bool(summary) and summary.get("status") == "complete" and (run_dir / ADAPTER_DIR).is_dir()


COMPLETE, INTERRUPTED, UNUSABLE = "complete", "interrupted", "unusable"


def run_state(run_dir: Path) -> str:
    """``complete`` (finished, adapter in place), ``interrupted`` (started, resumable), or ``unusable``: not
    started properly (no config), a summary that cannot be read (its state is unknown), or a summary that says
    complete without the adapter. Nothing offers to resume an unusable run, and nothing uses it as finished."""
    if not (run_dir / "config.json").is_file():
        return UNUSABLE
    if not (run_dir / SUMMARY).exists():
        return INTERRUPTED
    summary = read_summary(run_dir)
    if summary is None:
        return UNUSABLE
    if summary.get("status") != "complete":
        return INTERRUPTED
    return COMPLETE if (run_dir / ADAPTER_DIR).is_dir() else UNUSABLE


def latest_complete(runs_dir: str | os.PathLike) -> tuple[Path, dict[str, Any]] | None:
    """(folder, summary) of the most recently finished complete run, or None."""
    finished = [(run_dir, summary) for run_dir in run_folders(runs_dir)
                if is_complete(run_dir, summary := read_summary(run_dir))]
    if not finished:
        return None
    return max(finished, key=lambda found: (_time(found[1].get("finished_at")), found[0].name))


def latest_complete_run(project) -> Path | None:
    """The most recently finished run folder of ``project`` whose summary says "complete"."""
    found = latest_complete(project.runs_dir)
    return found[0] if found else None


def export_dir(runs_dir: str | os.PathLike, run_id: str) -> Path:
    return Path(runs_dir) / run_id / EXPORT_DIR


def read_manifest(out_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The export folder's ``manifest.json``, or None when it is missing, unreadable or lists no files."""
    manifest = _document(Path(out_dir) / MANIFEST)
    return manifest if manifest is not None and isinstance(manifest.get("files"), dict) else None


def ready_files(out_dir: str | os.PathLike) -> dict[str, Path]:
    """Format → file for every file the folder's manifest lists ready that is on disk at its recorded size
    (and, for a LoRA adapter, whose base GGUF is still there)."""
    return ready_in(out_dir, read_manifest(out_dir))


def ready_in(out_dir: str | os.PathLike, manifest: dict[str, Any] | None) -> dict[str, Path]:
    """``ready_files`` for a manifest already read (or just written) from ``out_dir``."""
    out_dir = Path(out_dir)
    found = {}
    for fmt, entry in ((manifest or {}).get("files") or {}).items():
        if isinstance(entry, dict) and entry.get("ready") and entry.get("file"):
            path = out_dir / entry["file"]
            base = adapter_base(out_dir, entry)  # a LoRA adapter is usable only beside the base it was verified on
            if path.is_file() and path.stat().st_size == entry.get("bytes") and (base is None or base.is_file()):
                found[fmt] = path
    return found


def adapter_base(out_dir: str | os.PathLike, entry: dict[str, Any]) -> Path | None:
    """The base GGUF a LoRA adapter's manifest entry names (stored relative to the export folder), or None."""
    base = entry.get("base_gguf")
    return Path(os.path.normpath(Path(out_dir) / base)) if base else None


def ready_file(out_dir: str | os.PathLike, fmt: str) -> Path | None:
    """The file of ``fmt`` in ``out_dir`` if the manifest lists it ready and it is there."""
    return ready_files(out_dir).get(fmt)


def _exports(runs_dir: str | os.PathLike) -> list[tuple[float, str, Path, dict[str, Any]]]:
    """(finished_at — else started_at, run name, export folder, manifest) of every run's export."""
    found = []
    for run_dir in run_folders(runs_dir):
        manifest = read_manifest(run_dir / EXPORT_DIR)
        if manifest is not None:
            when = _time(manifest.get("finished_at")) or _time(manifest.get("started_at"))
            found.append((when, run_dir.name, run_dir / EXPORT_DIR, manifest))
    return found


def latest_manifest(runs_dir: str | os.PathLike) -> Path | None:
    """The manifest of the most recent export (finished, else started), or None."""
    exports = _exports(runs_dir)
    return max(exports, key=lambda export: export[:2])[2] / MANIFEST if exports else None


def latest_ready_file(runs_dir: str | os.PathLike, fmt: str) -> Path | None:
    """The ready file of ``fmt`` from the most recently finished export that has one."""
    candidates = [(when, name, path) for when, name, folder, manifest in _exports(runs_dir)
                  if (path := ready_in(folder, manifest).get(fmt)) is not None]
    return max(candidates)[2] if candidates else None
