"""Where other steps find GGUF files: the student's base, and the latest tuned export."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

from doctune.core.events import CancelToken, Events
from doctune.core.export.folder import export_folder, normalise_export_format, require_ready
from doctune.core.export.quantize import normalise_format
from doctune.core.records import ProjectLayout
from doctune.core.runs import export_dir, latest_ready_file, ready_file


def base_cache_dir(project, student: str, revision: str = "") -> Path:
    """One folder per student model and revision (``ProjectLayout.base_export``)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(student).name or "student").strip("-") or "student"
    key = hashlib.sha256(f"{student}@{revision}".encode()).hexdigest()[:8]
    return ProjectLayout(Path(project.root)).base_export(f"{slug}-{key}")


def find_base_gguf(project, fmt: str = "q8_0") -> Path | None:
    """The project's student base model as a verified GGUF of ``fmt`` when it was exported already, else None
    (this only looks; ``base_gguf`` makes it)."""
    student = project.config.student
    return ready_file(base_cache_dir(project, student.model, student.revision), normalise_format(fmt))


def base_gguf(project, fmt: str = "q8_0", events: Events | None = None, cancel: CancelToken | None = None) -> Path:
    """The project's student base model as a verified GGUF of ``fmt``, exported once and cached.

    The step that prepares the ``base`` systems of chat, Compare and evaluation: they only look the file up
    (``find_base_gguf``) and ask for this step when it is missing."""
    from doctune.core.train import resolve_student

    student = project.config.student
    events = (events or Events()).child("export")

    def folder() -> Path:
        return resolve_student(student.model, revision=student.revision, offline=project.config.privacy.offline,
                               trust_remote_code=student.trust_remote_code, events=events)

    return cached_base_gguf(project, student.model, student.revision, folder, fmt, events, cancel)


def cached_base_gguf(project, student: str, revision: str, folder: Callable[[], Path], fmt: str,
                     events: Events | None = None, cancel: CancelToken | None = None) -> Path:
    """The base model ``student`` (at ``revision``, found by ``folder()`` when not cached) as a verified GGUF."""
    fmt = normalise_format(fmt)
    events = events or Events().child("export")
    cancel = cancel or CancelToken()
    out_dir = base_cache_dir(project, student, revision)
    cached = ready_file(out_dir, fmt)
    if cached is not None:
        return cached
    source = folder()
    events.log(f"Exporting the base student {student} to GGUF {fmt} (once; kept in {out_dir})")
    manifest = export_folder(source, out_dir, [fmt], stem="base", settings=project.config.export,
                             events=events, cancel=cancel, extra={"kind": "base", "student": student})
    return require_ready(manifest, out_dir, fmt)


def run_export_dir(project, run_id: str) -> Path:
    return export_dir(project.runs_dir, run_id)


def ready_gguf(project, run_id: str | None = None, fmt: str = "q8_0") -> Path | None:
    """The verified tuned GGUF of ``fmt`` from ``run_id`` (else the most recent export that has one).

    ``fmt="lora"``: the verified GGUF LoRA adapter, to load on top of the base GGUF.
    """
    fmt = normalise_export_format(fmt)
    if run_id is not None:
        return ready_file(run_export_dir(project, run_id), fmt)
    return latest_ready_file(project.runs_dir, fmt)
