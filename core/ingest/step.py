"""``run``: add files and folders to a project's document store.

For each file, in order: identify it by the SHA-256 of its bytes; skip it if
that content is already stored (unchanged, or the same file under another
name); otherwise read it, normalise and chunk its text, and store the chunks,
then the document row. A file that cannot be read gets a document row with
status ``error``, a reason and a hint, and no chunks; the other files go on.
A changed file (same path, new content) replaces its old row and chunks.

Safe points: between files, and between chunk batches of a large file (its
partial chunks are then deleted). Chunks are buffered and written in batches,
always before the document rows that vouch for them.
"""
from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from doctune.core.errors import UserError
from doctune.core.events import Cancelled, CancelToken, Events
from doctune.core.ingest.blocks import ReadFailure
from doctune.core.ingest.chunker import Chunk, Chunker
from doctune.core.ingest.readers import format_of, open_document
from doctune.core.ingest.tokens import default_counter

CHUNK_BATCH_ROWS = 2000
CHUNK_BATCH_CHARS = 8 << 20
LARGE_FILE_BYTES = 8 << 20
HASH_BLOCK = 1 << 20


class IngestInputError(UserError):
    """Paths that cannot be ingested at all (nothing was done)."""


class IngestWriteError(UserError):
    """The project's store could not be written (a full disk, a read-only folder): no file is to blame."""


class StoreWriteFailed(Exception):
    """A write to the document store failed; carries the error (internal: never reported as a file's fault)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class IngestParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project_dir: Path = Field(description="The project folder.")
    paths: list[Path] = Field(min_length=1, description="Files and folders to add (folders recursively).")
    chunk_tokens: int | None = Field(None, ge=32, le=8192, description="Chunk size in tokens (default: project setting).")
    chunk_overlap: int | None = Field(None, ge=0, le=2048, description="Overlap in tokens (default: project setting).")

    @model_validator(mode="after")
    def _overlap_below_half(self) -> IngestParams:
        if self.chunk_tokens is not None and self.chunk_overlap is not None and self.chunk_overlap * 2 >= self.chunk_tokens:
            raise ValueError("chunk_overlap must be less than half of chunk_tokens")
        return self


Status = Literal["added", "replaced", "unchanged", "error"]


@dataclass
class FileOutcome:
    path: str
    status: Status
    doc_id: str | None = None
    chunks: int = 0
    pages: int | None = None
    error: str | None = None
    hint: str | None = None
    note: str | None = None


@dataclass
class IngestResult:
    outcomes: list[FileOutcome] = field(default_factory=list)

    def of(self, *statuses: Status) -> list[FileOutcome]:
        return [outcome for outcome in self.outcomes if outcome.status in statuses]

    @property
    def failed(self) -> list[FileOutcome]:
        return self.of("error")

    @property
    def chunks_written(self) -> int:
        return sum(outcome.chunks for outcome in self.of("added", "replaced"))

    def summary(self) -> str:
        stored = self.of("added", "replaced")
        parts = [f"{len(stored)} file(s) ingested ({self.chunks_written} chunks)"]
        parts.append(f"{len(self.of('unchanged'))} unchanged")
        parts.append(f"{len(self.failed)} failed")
        return ", ".join(parts)


# ----- finding files -------------------------------------------------------------------
def discover_files(paths: list[Path], project_root: Path | None = None) -> list[Path]:
    """Files named, plus every non-hidden file under folders named (sorted); each once.

    Files inside the project folder itself (its database, settings) are never documents.
    """
    missing = [str(path) for path in paths if not path.exists() and not path.is_symlink()]
    if missing:
        raise IngestInputError(
            f"No such file or folder: {', '.join(missing)}", "check the spelling; nothing was added"
        )
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(_folder_files(path))
        else:
            found.append(path)
    unique: dict[Path, None] = {}
    for path in found:
        unique.setdefault(Path(os.path.abspath(path)), None)
    if project_root is not None:
        return [path for path in unique if not Path(os.path.realpath(path)).is_relative_to(project_root)]
    return list(unique)


def _folder_files(folder: Path) -> list[Path]:
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        files.extend(Path(root) / name for name in sorted(names) if not name.startswith("."))
    return files


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def error_doc_id(path: Path) -> str:
    return hashlib.sha256(f"error:{path}".encode()).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ----- writing in batches --------------------------------------------------------------
class _Writer:
    """Buffers chunk and document rows; chunks are always written before their document row."""

    def __init__(self, store) -> None:
        self.store = store
        self.chunks: list[dict[str, Any]] = []
        self.chars = 0
        self.documents: list[dict[str, Any]] = []
        self.superseded: list[str] = []
        self.flushed_doc_ids: set[str] = set()
        self.changed = False  # rows were deleted: disk space to give back

    def add_chunk(self, row: dict[str, Any]) -> bool:
        """Buffer a chunk; returns True when the buffer was written (a safe point)."""
        self.chunks.append(row)
        self.chars += len(row["text"])
        if len(self.chunks) >= CHUNK_BATCH_ROWS or self.chars >= CHUNK_BATCH_CHARS:
            self.flush()
            return True
        return False

    def add_document(self, row: dict[str, Any], superseded: list[str]) -> None:
        self.documents.append(row)
        self.supersede(superseded)

    def supersede(self, doc_ids: list[str]) -> None:
        """Delete these document rows (and chunks) at the next flush."""
        self.superseded.extend(doc_ids)

    def discard(self, doc_id: str) -> None:
        """Forget every chunk of a document that failed or was cancelled part-way."""
        self.chunks = [row for row in self.chunks if row["doc_id"] != doc_id]
        self.chars = sum(len(row["text"]) for row in self.chunks)
        if doc_id in self.flushed_doc_ids:
            try:
                self.store.delete_chunks_of(doc_id)
            except Exception as exc:
                raise StoreWriteFailed(exc) from exc
            self.flushed_doc_ids.discard(doc_id)

    def flush(self) -> None:
        try:
            self.store.add_chunks(self.chunks)
            self.flushed_doc_ids.update(row["doc_id"] for row in self.chunks)
            self.store.delete_documents(self.superseded)  # before adding: a retried error keeps its row id
            self.store.add_documents(self.documents)
        except Exception as exc:
            raise StoreWriteFailed(exc) from exc
        self.flushed_doc_ids.difference_update(row["id"] for row in self.documents)
        self.changed = self.changed or bool(self.superseded)
        self.chunks, self.chars, self.documents, self.superseded = [], 0, [], []

    def drop_buffers(self) -> None:
        """After a failed write: forget what was not written (those files are simply not added)."""
        self.chunks, self.chars, self.documents, self.superseded = [], 0, [], []


# ----- one file ------------------------------------------------------------------------
@dataclass
class _Context:
    writer: _Writer
    chunker: Chunker
    events: Events
    cancel: CancelToken
    rows_by_path: dict[str, list[dict[str, Any]]]
    stored_ids: dict[str, str]  # content id of each stored ok document → its path
    stored_formats: dict[str, str] = field(default_factory=dict)  # content id → the format it was read as


def _chunk_row(chunk: Chunk, doc_id: str, path: Path, title: str) -> dict[str, Any]:
    from doctune.core.store import chunk_id

    return {
        "id": chunk_id(doc_id, chunk.ordinal), "doc_id": doc_id, "doc_path": str(path), "doc_title": title,
        "ordinal": chunk.ordinal, "text": chunk.text, "page_start": chunk.page_start, "page_end": chunk.page_end,
        "char_start": chunk.char_start, "char_end": chunk.char_end,
        "heading_path": " > ".join(chunk.heading_path), "n_tokens": chunk.n_tokens,
    }


def _document_row(path: Path, doc_id: str, **fields: Any) -> dict[str, Any]:
    row = {"id": doc_id, "path": str(path), "name": path.name, "title": None, "format": None, "size": None,
           "mtime": None, "status": "ok", "error": None, "hint": None, "pages": None, "chunks": 0,
           "added_at": _now()}
    row.update(fields)
    return row


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def _ingest_file(path: Path, ctx: _Context) -> FileOutcome:
    previous_ids = [row["id"] for row in ctx.rows_by_path.get(str(path), [])]
    doc_id: str | None = None
    try:
        _check_ordinary_file(path)
        fmt = format_of(path)
        if path.stat().st_size == 0:
            raise ReadFailure("the file is empty", "add it again once it has content")
        doc_id = file_sha256(path)
        if doc_id in ctx.stored_ids and _reads_as_stored(path, fmt, doc_id, ctx):
            return _unchanged(path, doc_id, ctx, previous_ids)
        return _store_document(path, fmt, doc_id, ctx, previous_ids)
    except Cancelled:
        if doc_id:
            ctx.writer.discard(doc_id)
        raise
    except StoreWriteFailed:
        raise  # the project's store, not this file, is at fault: the whole add stops (see _ingest_files)
    except Exception as exc:  # every failure of one file is reported, and the others go on
        if doc_id:
            ctx.writer.discard(doc_id)
        reason, hint = describe_failure(exc, path)
        _forget(ctx, previous_ids)
        stat = _stat(path)
        ctx.writer.add_document(
            _document_row(path, error_doc_id(path), status="error", error=reason, hint=hint,
                          format=path.suffix.lower().lstrip(".") or None,
                          size=stat.st_size if stat else None, mtime=stat.st_mtime if stat else None),
            previous_ids,
        )
        ctx.events.error(reason, path=str(path), hint=hint, detail=f"{type(exc).__name__}: {exc}")
        return FileOutcome(str(path), "error", error=reason, hint=hint)


FILE_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
              (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _check_ordinary_file(path: Path) -> None:
    """Refuse links to nothing and special files (a pipe would block the read forever) in their own words."""
    if path.is_symlink() and not path.exists():
        raise ReadFailure(f"this is a link to {os.readlink(path)}, which does not exist",
                          "restore the file it points to (or remove the link), then add it again")
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in FILE_KINDS if test(mode)), "not an ordinary file")
        raise ReadFailure(f"this is {kind}, not an ordinary file",
                          "DocTune reads ordinary files only; save the content to a file and add that")


def _reads_as_stored(path: Path, fmt: str, doc_id: str, ctx: _Context) -> bool:
    """Whether ``path``, whose content is already stored, is that document: read as the same format it is; in
    another format (a text file named .docx) it is read as that format, so a file that fails keeps its own row."""
    stored_format = ctx.stored_formats.get(doc_id)
    if stored_format is None or stored_format == fmt:
        return True
    for _ in open_document(path, fmt).blocks:  # raises the file's own failure; else it is the same text
        pass
    return True


def _forget(ctx: _Context, doc_ids: list[str]) -> None:
    """These documents are being replaced: their content no longer counts as stored."""
    for doc_id in doc_ids:
        ctx.stored_ids.pop(doc_id, None)


def _unchanged(path: Path, doc_id: str, ctx: _Context, previous_ids: list[str]) -> FileOutcome:
    stored_at = ctx.stored_ids[doc_id]
    ctx.writer.supersede([old for old in previous_ids if old != doc_id])
    note = None if stored_at == str(path) else f"same content as {stored_at}, already in the project"
    ctx.events.log(f"{path.name}: unchanged" + (f" ({note})" if note else ""), path=str(path))
    return FileOutcome(str(path), "unchanged", doc_id=doc_id, note=note)


def _store_document(path: Path, fmt: str, doc_id: str, ctx: _Context, previous_ids: list[str]) -> FileOutcome:
    document = open_document(path, fmt)
    stat = path.stat()
    large = stat.st_size >= LARGE_FILE_BYTES
    count = 0
    for chunk in ctx.chunker.chunks(document.blocks):
        wrote = ctx.writer.add_chunk(_chunk_row(chunk, doc_id, path, document.title))
        count += 1
        if wrote:
            if large:  # characters read stand in for bytes (equal for ASCII text)
                _file_progress(ctx, path, min(chunk.char_end, stat.st_size), stat.st_size)
            ctx.cancel.raise_if_cancelled()
    if large:
        _file_progress(ctx, path, stat.st_size, stat.st_size)
    if count == 0:
        raise ReadFailure("no text found in the file", "check that it has readable text (not only images)")
    ctx.writer.add_document(
        _document_row(path, doc_id, title=document.title, format=document.format, size=stat.st_size,
                      mtime=stat.st_mtime, pages=document.pages, chunks=count),
        [old for old in previous_ids if old != doc_id],
    )
    _forget(ctx, previous_ids)
    ctx.stored_ids[doc_id] = str(path)
    ctx.stored_formats[doc_id] = fmt
    return FileOutcome(str(path), "replaced" if previous_ids else "added", doc_id=doc_id, chunks=count,
                       pages=document.pages)


def _file_progress(ctx: _Context, path: Path, done: int, total: int) -> None:
    ctx.events.progress(done, total, path.name, stage="ingest.file", unit="bytes")


def describe_failure(exc: BaseException, path: Path) -> tuple[str, str]:
    """A plain-words reason and a hint for a file that could not be ingested."""
    if isinstance(exc, ReadFailure):
        return exc.reason, exc.hint or ""
    if isinstance(exc, FileNotFoundError):
        return ("the file disappeared before it could be read",
                "put it back and add it again (or ignore this if it was removed on purpose)")
    if isinstance(exc, PermissionError):
        return ("no permission to read the file",
                f"give your user read access (e.g. chmod u+r '{path}') and add it again")
    if isinstance(exc, IsADirectoryError):
        return "this is a folder, not a file", "add the folder itself; its files are found automatically"
    if isinstance(exc, OSError):
        return (f"the file could not be read ({exc.strerror or exc})",
                "check the disk or network share it is on, then add it again")
    kind = path.suffix.lower().lstrip(".").upper() or "a document"
    return (f"the file could not be read as {kind} ({type(exc).__name__}: {exc})",
            "check that it opens in its usual program; re-save it and add it again")


# ----- the step ------------------------------------------------------------------------
def _chunker_for(params: IngestParams, project) -> Chunker:
    settings = project.config.ingest
    tokens = params.chunk_tokens or settings.chunk_tokens
    overlap = params.chunk_overlap if params.chunk_overlap is not None else settings.chunk_overlap
    if overlap * 2 >= tokens:
        raise IngestInputError(
            f"chunk overlap ({overlap}) must be less than half of the chunk size ({tokens})",
            "lower [ingest] chunk_overlap or raise chunk_tokens in doctune.toml",
            "the chunk sizes are set by [ingest] chunk_overlap and chunk_tokens in the project's doctune.toml (the "
            "window has no setting for them): lower the first or raise the second",
        )
    return Chunker(default_counter(), chunk_tokens=tokens, overlap=overlap)


def run(params: IngestParams, *, events: Events, cancel: CancelToken) -> IngestResult:
    """Ingest ``params.paths`` into the project; see the module docstring."""
    from doctune.core.documents_status import changing_documents
    from doctune.core.project import Project

    project = Project.open(params.project_dir)
    chunker = _chunker_for(params, project)
    files = discover_files(params.paths, project.root)
    with changing_documents(project):
        return _ingest_files(project, files, chunker, events, cancel)


def _ingest_files(project, files: list[Path], chunker: Chunker, events: Events, cancel: CancelToken) -> IngestResult:
    from doctune.core.store import Store

    store = Store(project)
    orphans = store.delete_orphan_chunks()
    if orphans:
        events.log(f"Removed {orphans} chunk(s) left by an interrupted earlier run.")
    rows = store.document_rows()
    rows_by_path: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        rows_by_path.setdefault(row["path"], []).append(row)
    ctx = _Context(
        writer=_Writer(store), chunker=chunker, events=events, cancel=cancel, rows_by_path=rows_by_path,
        stored_ids={row["id"]: row["path"] for row in rows if row["status"] == "ok"},
        stored_formats={row["id"]: row["format"] for row in rows if row["status"] == "ok" and row["format"]},
    )
    result = IngestResult()
    tracker = events.tracker(len(files), unit="files", stage="ingest")
    index = 0
    try:
        try:
            for index, path in enumerate(files):
                tracker.update(index, message=path.name, force=True)
                cancel.raise_if_cancelled()
                result.outcomes.append(_ingest_file(path, ctx))
            tracker.update(len(files), force=True)
        finally:
            ctx.writer.flush()
    except StoreWriteFailed as failed:
        raise _write_failed(project, store, ctx.writer, failed.error, files[index:], events) from None
    if ctx.writer.changed or orphans:
        freed = store.reclaim()
        if freed:
            events.log(f"Gave back {freed / 1e6:.1f} MB of disk space held by replaced documents.")
    return result


def _write_failed(project, store, writer: _Writer, error: BaseException, remaining: list[Path],
                  events: Events) -> IngestWriteError:
    """The store could not be written: drop what was not written, give back the space a half-done write took,
    and say what to do (how much to free on a full disk)."""
    from doctune.core.errors import disk_full_message, is_disk_full

    writer.drop_buffers()
    freed = 0
    try:
        store.delete_orphan_chunks()
        freed = store.reclaim()
    except Exception:  # the cleanup is a courtesy; the write failure is what the user must hear about
        pass
    if freed:
        events.log(f"Gave back {freed / 1e6:.1f} MB left by the failed write.")
    if is_disk_full(error):
        need = sum(_stat(path).st_size for path in remaining if _stat(path) is not None) + (8 << 20)
        reason = disk_full_message(project.lancedb_dir, need)
    else:
        reason = f"the project's store in {project.lancedb_dir} could not be written ({error})"
    return IngestWriteError(f"Documents could not be added: {reason}.",
                            "Files added before this are kept; run the same 'doctune add' again to add the rest.",
                            "Files added before this are kept; add the same files again on the Documents page (Add "
                            "files… or Add folder…) to add the rest.")
