"""Crash-safe files: whole files by temp + rename, logs by append + flush.

A reader never sees half a file: ``atomic_write_*`` write a temporary file in
the same folder, flush and fsync it, then rename it over the target. Append-only
JSONL logs may end in a torn line after a crash; ``read_jsonl`` skips it (and
``JsonlAppender`` repairs it before appending) instead of failing.
"""
from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

SCHEMA_KEY = "schema_version"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that it is either all there or not changed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return target


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


class AtomicFile:
    """Context manager: a temp file path that replaces ``path`` only on success.

    For writers that need a real file path (a model saver, a GGUF writer)::

        with AtomicFile(out / "model.gguf") as tmp:
            writer.write_to(tmp)
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.tmp is not None
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
            return
        with open(self.tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(self.tmp, self.path)
        _fsync_dir(self.path.parent)


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def read_json_or_none(path: str | os.PathLike) -> Any:
    """The JSON document at ``path``, or None when it is missing or cannot be read or parsed."""
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def read_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Yield each complete record; a torn or garbled line is skipped.

    Only complete lines (ending in a newline) that parse as a JSON object are
    yielded, so a record being written when the process died is never seen.
    """
    file = Path(path)
    if not file.exists():
        return
    with open(file, "rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                break
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(record, dict):
                yield record


class JsonlAppender:
    """Append-only JSONL log: each record is one line, flushed and fsynced.

    Opening it truncates a torn last line left by a crash, so the next record
    starts on a line of its own. A write that fails (a full disk) raises its
    ``OSError`` after cutting off what it wrote, so the log never keeps half a
    record and nothing is left buffered to fail again at ``close``.
    """

    def __init__(self, path: str | os.PathLike, fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._repair_torn_tail()
        self._handle = open(self.path, "ab", buffering=0)
        self._size = os.fstat(self._handle.fileno()).st_size

    def _repair_torn_tail(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as handle:
            data = handle.read()
            if data.endswith(b"\n"):
                return
            keep = data.rfind(b"\n") + 1
            handle.truncate(keep)

    def append(self, record: dict) -> None:
        self.append_many([record])

    def append_many(self, records: Iterable[dict]) -> None:
        payload = b"".join(
            (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8") for record in records
        )
        if not payload:
            return
        view = memoryview(payload)
        try:
            while view:
                written = self._handle.write(view)
                if not written:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
                view = view[written:]
            if self._fsync:
                os.fsync(self._handle.fileno())
        except OSError:
            self._cut_back()
            raise
        self._size += len(payload)

    def _cut_back(self) -> None:
        try:
            os.ftruncate(self._handle.fileno(), self._size)
        except OSError:
            pass  # the torn line is cut off when the log is next opened

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe_bytes(count: int) -> str:
    """A size in words: ``1.5 GB``, ``12.0 MB``, ``3.2 kB``, ``512 bytes``."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"
