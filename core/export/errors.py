"""Errors of the export step, written for the user."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from doctune.core.errors import disk_errors as write_errors
from doctune.core.gguf_files import ExportError  # defined in the models layer: an unknown GGUF format is one too


class UnsupportedModelError(ExportError):
    """A model whose architecture or tokenizer the GGUF writer does not handle."""


class VerificationError(ExportError):
    """A written file that failed a check; it is reported and never marked ready."""


def disk_errors(what: str, folder: Path, need_bytes: Callable[[], int | None] | None = None):
    """Turn a failed write (disk full, permissions, a file in the way) into an ``ExportError`` (on a full disk,
    saying how much to free when ``need_bytes`` tells what the write needs)."""
    return write_errors(what, folder, ExportError,
                        "Free some disk space or fix the folder's permissions, then run the export again; "
                        "files already verified are kept.", need_bytes=need_bytes)


def safetensors_bytes(model_dir: Path, scale: float = 1.0) -> int:
    """The size of a model folder's safetensors weights (times ``scale``, for another precision)."""
    return int(sum(file.stat().st_size for file in Path(model_dir).glob("*.safetensors")) * scale)
