"""Errors of the export step, written for the user."""
from __future__ import annotations

from doctune.core.errors import UserError


class ExportError(UserError):
    """An export that cannot go on; the message names the file or setting and what to do."""


class UnsupportedModelError(ExportError):
    """A model whose architecture or tokenizer the GGUF writer does not handle."""


class VerificationError(ExportError):
    """A written file that failed a check; it is reported and never marked ready."""
