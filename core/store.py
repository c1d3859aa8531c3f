"""The project's LanceDB tables of documents and chunks (written by ingestion).

Table ``documents`` has one row per file the user added, keyed by the file's
content: ``id`` is the SHA-256 of its bytes (for a file that could not be read
at all, the SHA-256 of ``"error:" + path``, so each failed path has a row of
its own). ``status`` is ``"ok"`` (its chunks are stored) or ``"error"`` (no
chunks; ``error`` says why in plain words, ``hint`` what to do).

Table ``chunks`` holds the text pieces other steps read (retrieval, synthesis,
evaluation). Chunk ids are ``"{doc_id[:16]}-{ordinal:05d}"``; ``char_start`` /
``char_end`` index the document's normalised text (its blocks joined by a blank
line), ``page_start`` / ``page_end`` are 1-based and null for formats without
pages, ``heading_path`` joins the enclosing headings with ``" > "``.

Chunks are written before their document row, so a row with status ``ok``
always has all its chunks; chunks whose document row is missing (left by a
crash) are ignored by :func:`list_chunks` and deleted by the next ingestion.
Other steps keep their own tables (embeddings, indexes) and read these.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from doctune.core.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from doctune.core.project import Project

DOCUMENTS = "documents"
CHUNKS = "chunks"

DOCUMENTS_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("path", pa.string(), nullable=False),
    pa.field("name", pa.string(), nullable=False),
    pa.field("title", pa.string()),
    pa.field("format", pa.string()),
    pa.field("size", pa.int64()),
    pa.field("mtime", pa.float64()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("error", pa.string()),
    pa.field("hint", pa.string()),
    pa.field("pages", pa.int32()),
    pa.field("chunks", pa.int32()),
    pa.field("added_at", pa.string()),
])

CHUNKS_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("doc_path", pa.string()),
    pa.field("doc_title", pa.string()),
    pa.field("ordinal", pa.int32(), nullable=False),
    pa.field("text", pa.string(), nullable=False),
    pa.field("page_start", pa.int32()),
    pa.field("page_end", pa.int32()),
    pa.field("char_start", pa.int64()),
    pa.field("char_end", pa.int64()),
    pa.field("heading_path", pa.string()),
    pa.field("n_tokens", pa.int32()),
])


def chunk_id(doc_id: str, ordinal: int) -> str:
    return f"{doc_id[:16]}-{ordinal:05d}"


def sql_string(value: str) -> str:
    """A string literal for a LanceDB filter."""
    return "'" + value.replace("'", "''") + "'"


def sql_in(column: str, values: Iterable[str]) -> str:
    listed = ", ".join(sql_string(value) for value in values)
    return f"{column} IN ({listed})" if listed else "false"


class StoreBusy(UserError):
    """Another process is changing this project's documents."""


class StoreUnwritable(UserError):
    """The project's document store cannot be written (a read-only folder or disk, missing permissions)."""


def _unwritable(project: Project, exc: BaseException) -> StoreUnwritable:
    from doctune.core.errors import disk_full_message, is_disk_full

    reason = disk_full_message(project.lancedb_dir) if is_disk_full(exc) else \
        f"the folder {project.lancedb_dir} cannot be written ({getattr(exc, 'strerror', None) or exc})"
    return StoreUnwritable(f"The project's documents cannot be changed: {reason}.",
                           "Make the project folder writable (check its permissions, or copy the project to a "
                           "writable disk), then run this again.",
                           window_hint="Make the project folder writable (check its permissions, or copy the project "
                           "to a writable disk), then add or remove the documents again on the Documents page.")


@contextmanager
def writing(project: Project) -> Iterator[None]:
    """Hold the project's write lock while changing documents (one ``add`` or ``remove`` at a time).

    Ingestion deletes chunks left without a document row by a crashed run; the
    lock makes sure those are never the chunks of a run still in progress.
    Changes go through ``documents_status.changing_documents``, which also
    refreshes the snapshot ``doctune status`` reads.
    """
    from filelock import FileLock, Timeout

    lock = FileLock(str(project.lancedb_dir / ".write.lock"))
    try:
        project.lancedb_dir.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=0)
    except Timeout:  # before OSError: filelock's Timeout is a TimeoutError
        raise StoreBusy(
            "Another DocTune command is adding or removing documents in this project",
            "wait until it has finished, then run this again",
        ) from None
    except OSError as exc:
        raise _unwritable(project, exc) from None
    try:
        yield
    finally:
        lock.release()


def connect(project: Project):
    import lancedb

    project.lancedb_dir.mkdir(parents=True, exist_ok=True)
    return lancedb.connect(str(project.lancedb_dir))


class Store:
    """The two tables of one project, created on first use."""

    def __init__(self, project: Project) -> None:
        self.folder = project.lancedb_dir
        try:
            self.db = connect(project)
            self.documents = self._table(DOCUMENTS, DOCUMENTS_SCHEMA)
            self.chunks = self._table(CHUNKS, CHUNKS_SCHEMA)
        except OSError as exc:
            raise _unwritable(project, exc) from None
        except Exception as exc:  # LanceDB reports a folder it cannot write as its own error types
            if "ermission denied" in str(exc) or "ead-only file system" in str(exc):
                raise _unwritable(project, exc) from None
            raise

    def _table(self, name: str, schema: pa.Schema):
        """The table ``name``: opened when it exists (a read-only project can still be read), else created."""
        try:
            return self.db.open_table(name)
        except ValueError:  # "Table … was not found"
            return self.db.create_table(name, schema=schema, exist_ok=True)

    # ----- reading -----------------------------------------------------------------
    def document_rows(self, where: str | None = None) -> list[dict[str, Any]]:
        query = self.documents.search()
        if where:
            query = query.where(where)
        return query.limit(None).to_arrow().to_pylist()

    def documents_by_path(self) -> list[dict[str, Any]]:
        """Every document row (ok and error), sorted by path."""
        return sorted(self.document_rows(), key=lambda row: (row["path"], row["id"]))

    def ok_document_ids(self) -> list[str]:
        table = self.documents.search().where("status = 'ok'").select(["id"]).limit(None).to_arrow()
        return table.column("id").to_pylist()

    def chunk_rows(self, doc_ids: list[str]) -> list[dict[str, Any]]:
        if not doc_ids:
            return []
        import pyarrow.compute as pc

        table = self.chunks.to_arrow()
        table = table.filter(pc.is_in(table.column("doc_id"), value_set=pa.array(doc_ids, pa.string())))
        rows = table.to_pylist()
        return sorted(rows, key=lambda row: (row["doc_path"] or "", row["doc_id"], row["ordinal"]))

    def chunk_doc_ids(self) -> set[str]:
        column = self.chunks.search().select(["doc_id"]).limit(None).to_arrow().column("doc_id")
        return set(column.unique().to_pylist())

    # ----- writing -----------------------------------------------------------------
    def add_chunks(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.chunks.add(pa.Table.from_pylist(rows, schema=CHUNKS_SCHEMA))

    def add_documents(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.documents.add(pa.Table.from_pylist(rows, schema=DOCUMENTS_SCHEMA))

    def delete_documents(self, doc_ids: Iterable[str]) -> None:
        """Delete document rows and their chunks (chunks first: no row ever points at missing chunks)."""
        ids = sorted(set(doc_ids))
        if not ids:
            return
        self.chunks.delete(sql_in("doc_id", ids))
        self.documents.delete(sql_in("id", ids))

    def delete_chunks_of(self, doc_id: str) -> None:
        self.chunks.delete(f"doc_id = {sql_string(doc_id)}")

    def reclaim(self) -> int:
        """Give back the disk space of deleted rows, old table versions and files a failed write left behind
        (LanceDB's compaction and cleanup); returns the bytes freed. Call it holding the write lock.

        On a full disk, compaction (which writes) is skipped and only the cleanup (which deletes) runs."""
        import warnings
        from datetime import timedelta

        from doctune.core.errors import is_disk_full

        before = folder_bytes(self.folder)
        for table in (self.chunks, self.documents):
            with warnings.catch_warnings():
                # LanceDB warns that readers of an older version would fail: DocTune's readers open the tables
                # afresh for each read, and writers are kept out by the write lock held here.
                warnings.filterwarnings("ignore", message=r"optimize\(cleanup_older_than=0\)")
                try:
                    table.optimize(cleanup_older_than=timedelta(0), delete_unverified=True)
                except Exception as exc:
                    if not is_disk_full(exc):
                        raise
                    table.cleanup_old_versions(older_than=timedelta(0), delete_unverified=True)
        return max(0, before - folder_bytes(self.folder))

    def delete_orphan_chunks(self) -> int:
        """Remove chunks whose document row is missing (a run that crashed mid-way); returns how many."""
        orphan_ids = self.chunk_doc_ids() - set(self.ok_document_ids())
        if not orphan_ids:
            return 0
        orphan_filter = sql_in("doc_id", orphan_ids)
        orphans = self.chunks.count_rows(orphan_filter)
        self.chunks.delete(orphan_filter)
        return orphans


def folder_bytes(folder) -> int:
    """Bytes of the files under ``folder``."""
    import os

    total = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def describe_reclaimed(freed: int) -> str:
    return f"{freed / 1e6:.1f} MB" if freed >= 100_000 else f"{freed / 1e3:.0f} KB"


def list_documents(project: Project) -> list[dict[str, Any]]:
    """Every document row (ok and error), sorted by path."""
    return Store(project).documents_by_path()


def list_chunks(project: Project) -> list[dict[str, Any]]:
    """Every chunk of every document stored as ok, in document-path then reading order."""
    store = Store(project)
    return store.chunk_rows(store.ok_document_ids())
