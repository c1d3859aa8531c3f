"""Errors of the export step, written for the user."""
from __future__ import annotations

import errno
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from doctune.core.errors import UserError


class ExportError(UserError):
    """An export that cannot go on; the message names the file or setting and what to do."""


class UnsupportedModelError(ExportError):
    """A model whose architecture or tokenizer the GGUF writer does not handle."""


class VerificationError(ExportError):
    """A written file that failed a check; it is reported and never marked ready."""


@contextmanager
def disk_errors(what: str, folder: Path) -> Iterator[None]:
    """Turn a failed write (disk full, permissions, a file in the way) into an ``ExportError``."""
    try:
        yield
    except OSError as exc:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        blocked = exc.errno in (errno.EEXIST, errno.ENOTDIR)
        reason = ("the disk is full" if full else "a file is in the way of a folder" if blocked
                  else (exc.strerror or str(exc)))
        raise ExportError(f"Could not write the {what} in {folder}: {reason}.",
                          "Free some disk space or fix the folder's permissions, then run the export again; "
                          "files already verified are kept.") from None
