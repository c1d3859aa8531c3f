"""Errors whose message is written for the user.

Raise a subclass of ``UserError`` (or register a class with
``UserError.register``) when the message alone tells the user what went wrong
and what to do; the CLI prints it without a traceback and exits with 1.

One message source, two forms of advice: ``hint`` says what to do in command-line
words (``doctune train -p …``, ``teacher.model_path in doctune.toml``) and stays in
``str(exc)`` as the CLI prints it; ``window_hint`` says the same in the window's words
(the page and the button: "On the Teacher page, choose a GGUF file and press Save").
The CLI's ``error``/``warning`` events carry both (``hint``, ``window_hint``); the
window shows ``event_window_text`` / ``exception_window_text``.
"""
from __future__ import annotations

import errno
from abc import ABC
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


class UserError(Exception, ABC):
    """An error with a plain-words message for the user, optionally a hint (CLI words) and its window form."""

    def __init__(self, message: str, hint: str | None = None, window_hint: str | None = None) -> None:
        super().__init__(message if not hint else f"{message} — {hint}")
        self.summary = message
        self.hint = hint
        self.window_hint = window_hint


def advice_fields(exc: BaseException) -> dict[str, str]:
    """The event fields of a user error's advice, ``hint`` and ``window_hint`` — only those it has."""
    fields = {"hint": getattr(exc, "hint", None), "window_hint": getattr(exc, "window_hint", None)}
    return {key: value for key, value in fields.items() if isinstance(value, str) and value}


def window_text(message: str, hint: str | None = None, window_hint: str | None = None,
                summary: str | None = None) -> str:
    """What the window shows: the message without the command-line hint, then the window's advice.

    ``message`` is the full CLI text (``str(exc)``); ``summary`` the message alone when known. Without a
    ``window_hint`` the CLI hint is kept (better a command than no advice)."""
    if not window_hint:
        return message if not hint or hint in message else _sentences(message, hint)
    bare = summary or (message[: -len(f" — {hint}")] if hint and message.endswith(f" — {hint}") else message)
    return _sentences(bare, window_hint)


def _sentences(first: str, second: str) -> str:
    first = first.rstrip()
    if first.endswith((".", "!", "?", ":")):
        return f"{first} {second}"
    return f"{first}. {second[:1].upper()}{second[1:]}"


def event_window_text(event: dict) -> str:
    """``window_text`` of an event (its ``window_message``, the whole message in the window's words, wins)."""
    if event.get("window_message"):
        return str(event["window_message"])
    return window_text(str(event.get("message") or ""), event.get("hint"), event.get("window_hint"))


def exception_window_text(exc: BaseException) -> str:
    """``window_text`` of an exception (a ``UserError`` or any other)."""
    return window_text(str(exc), getattr(exc, "hint", None), getattr(exc, "window_hint", None),
                       getattr(exc, "summary", None))


DISK_FULL_TEXTS = ("No space left on device", "StorageFull", "Disk quota exceeded", "os error 28",
                   "QuotaExceeded")
MB = 1_000_000


def is_disk_full(exc: BaseException) -> bool:
    """A write that failed for want of space: an ``OSError`` (ENOSPC, EDQUOT), or a library's own error type
    carrying it (safetensors, torch, LanceDB say so only in their message)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(text in str(exc) for text in DISK_FULL_TEXTS)


def write_failure_reason(exc: OSError) -> str:
    """Plain words for why a write failed."""
    if is_disk_full(exc):
        return "the disk is full"
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        return "a file is in the way of a folder"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"the folder cannot be written ({exc.strerror})"
    return exc.strerror or str(exc)


def free_bytes(folder: Path) -> int | None:
    """Free space on the disk of ``folder`` (its nearest existing parent), or None when unknown."""
    import shutil

    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def disk_full_message(folder: Path, need_bytes: int | None = None) -> str:
    """"the disk is full at FOLDER; free N MB": N is what the write still lacks (at least 1 MB). What to do then
    (re-run the command, press the page's button again) is the error's hint, in the CLI's or the window's words."""
    if not need_bytes:
        return f"the disk is full at {folder}; free some space"
    lacking = need_bytes - (free_bytes(folder) or 0)
    return f"the disk is full at {folder}; free {max(1, -(-int(lacking * 1.1) // MB))} MB"


@contextmanager
def disk_errors(what: str, folder: Path, error_type: type[UserError], hint: str,
                need_bytes: Callable[[], int | None] | None = None, window_hint: str | None = None) -> Iterator[None]:
    """Turn a failed write (disk full, permissions, a file in the way) into ``error_type`` naming the folder.

    ``need_bytes``: how much the write needs in all, for the "free N MB" of a full disk (asked only then)."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            need = _quietly(need_bytes)
            raise error_type(f"Could not write the {what}: {disk_full_message(folder, need)}.", hint,
                             window_hint) from None
        if isinstance(exc, OSError):
            raise error_type(f"Could not write the {what} in {folder}: {write_failure_reason(exc)}.", hint,
                             window_hint) from None
        raise


def _quietly(need_bytes: Callable[[], int | None] | None) -> int | None:
    try:
        return need_bytes() if need_bytes is not None else None
    except Exception:  # the size is a courtesy; never hide the disk-full error behind another
        return None
