"""Errors of the export step, written for the user."""
from __future__ import annotations

from pathlib import Path

from doctune.core.errors import UserError
from doctune.core.errors import disk_errors as write_errors


class ExportError(UserError):
    """An export that cannot go on; the message names the file or setting and what to do."""


class UnsupportedModelError(ExportError):
    """A model whose architecture or tokenizer the GGUF writer does not handle."""


class VerificationError(ExportError):
    """A written file that failed a check; it is reported and never marked ready."""


def disk_errors(what: str, folder: Path):
    """Turn a failed write (disk full, permissions, a file in the way) into an ``ExportError``."""
    return write_errors(what, folder, ExportError,
                        "Free some disk space or fix the folder's permissions, then run the export again; "
                        "files already verified are kept.")
