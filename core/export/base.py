"""The student's base model as a verified GGUF (``base_gguf``), made once and cached in ``cache/base/``.

Looking it up without making it (``find_base_gguf``) is ``doctune.core.gguf_files``, as is ``ready_gguf``."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from doctune.core.events import CancelToken, Events
from doctune.core.export.folder import export_folder, require_ready
from doctune.core.gguf_files import base_cache_dir, normalise_format
from doctune.core.runs import ready_file


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
