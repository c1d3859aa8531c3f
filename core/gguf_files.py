"""Where the GGUF files export made are, and the names of their formats.

Chat, Compare, evaluation, the pipeline and export itself look files up here:
the student's base model exported once into the project's cache
(``find_base_gguf``) and the verified files of a training run's export
(``ready_gguf``). Only looking: the export step (``doctune.core.export``)
makes them, and re-exports these names and ``ExportError``.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from doctune.core.errors import UserError
from doctune.core.records import ProjectLayout
from doctune.core.runs import export_dir, latest_ready_file, ready_file

# llama.cpp ``llama_ftype`` numbers of the formats DocTune offers.
FTYPES: dict[str, int] = {
    "f16": 1,
    "q8_0": 7,
    "q4_0": 2,
    "q5_0": 8,
    "q5_1": 9,
    "q2_k": 10,
    "q3_k_m": 12,
    "q4_k_s": 14,
    "q4_k_m": 15,
    "q5_k_s": 16,
    "q5_k_m": 17,
    "q6_k": 18,
}

LORA = "lora"  # the training run's adapter as a GGUF LoRA adapter


class ExportError(UserError):
    """An export that cannot go on; the message names the file or setting and what to do.

    Defined here because asking for a GGUF format that does not exist is one too, wherever it is asked
    (``normalise_format``); ``doctune.core.export`` re-exports it with its own errors."""


def normalise_format(fmt: str) -> str:
    """A GGUF format name DocTune offers (``FTYPES``), in lower case."""
    name = fmt.strip().lower()
    if name not in FTYPES:
        raise ExportError(f"Unknown GGUF format '{fmt}'.", f"Choose from: {', '.join(FTYPES)}.")
    return name


def normalise_export_format(fmt: str) -> str:
    """A GGUF format name, or ``lora`` (the training run's adapter as a GGUF LoRA adapter)."""
    return LORA if fmt.strip().lower() == LORA else normalise_format(fmt)


def base_cache_dir(project, student: str, revision: str = "") -> Path:
    """One folder per student model and revision (``ProjectLayout.base_export``)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(student).name or "student").strip("-") or "student"
    key = hashlib.sha256(f"{student}@{revision}".encode()).hexdigest()[:8]
    return ProjectLayout(Path(project.root)).base_export(f"{slug}-{key}")


def find_base_gguf(project, fmt: str = "q8_0") -> Path | None:
    """The project's student base model as a verified GGUF of ``fmt`` when it was exported already, else None
    (this only looks; ``doctune.core.export.base_gguf`` makes it)."""
    student = project.config.student
    return ready_file(base_cache_dir(project, student.model, student.revision), normalise_format(fmt))


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
