"""The project's document rows, readable in milliseconds: a snapshot of the ``documents`` table.

Importing LanceDB costs about 3 s on a 2-core machine (its REST client's
models), which is too long for ``doctune status`` — the window's Documents
page waits for it. So the rows are also kept as a small JSON file in the
project's cache, stamped with the table version they were read at. A reader
trusts the snapshot only while that version is still the table's newest one on
disk (Lance writes a manifest file per version, so a change by any process —
an older DocTune included — makes the snapshot stale), and otherwise reads the
table and writes a fresh snapshot. Whatever changes the documents does it inside
``changing_documents`` (the store's write lock), which records a fresh snapshot
before the lock is released.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doctune.core.records import DocumentsSnapshot

if TYPE_CHECKING:  # pragma: no cover
    from doctune.core.project import Project

_U64_MAX = 2**64 - 1
_MANIFEST = re.compile(r"^(\d+)\.manifest$")


def snapshot_path(project: Project) -> Path:
    return project.layout.documents_snapshot


def table_version_on_disk(table_dir: Path) -> int | None:
    """The newest version of a Lance table, from its manifest file names (both of Lance's naming schemes)."""
    try:
        names = [entry.name for entry in (table_dir / "_versions").iterdir()]
    except OSError:
        return None
    versions = []
    for name in names:
        match = _MANIFEST.match(name)
        if match:
            number = int(match.group(1))
            versions.append(_U64_MAX - number if number > 2**63 else number)  # V2 names count down from u64::MAX
    return max(versions, default=None)


def read_snapshot(project: Project) -> list[dict[str, Any]] | None:
    """The rows of the snapshot if it describes the table as it is now; else None."""
    current = table_version_on_disk(project.layout.documents_table)
    if current is None:
        return None
    snapshot = DocumentsSnapshot.load_or_none(snapshot_path(project))
    if snapshot is None or snapshot.schema_version != DocumentsSnapshot.VERSION or snapshot.table_version != current:
        return None
    return snapshot.rows


def write_snapshot(project: Project, table_version: int, rows: list[dict[str, Any]]) -> None:
    """Record ``rows`` as the table's content at ``table_version`` (a read-only project keeps no snapshot)."""
    try:
        project.cache_dir.mkdir(parents=True, exist_ok=True)
        DocumentsSnapshot(table_version=table_version, rows=rows).save(snapshot_path(project))
    except OSError:
        pass


def document_rows(project: Project) -> list[dict[str, Any]]:
    """Every document row (ok and error), sorted by path: from the snapshot when it is current, else the store."""
    rows = read_snapshot(project)
    if rows is not None:
        return rows
    if not project.layout.documents_table.exists():
        return []
    return refresh_snapshot(project)


def refresh_snapshot(project: Project) -> list[dict[str, Any]]:
    """Read the table (LanceDB), record a snapshot of it, and return its rows sorted by path."""
    from doctune.core.store import Store

    store = Store(project)
    rows = store.documents_by_path()
    version = store.documents.version  # the opened table stays at the version it was opened at
    if version == table_version_on_disk(project.layout.documents_table):  # else another process wrote meanwhile
        write_snapshot(project, version, rows)
    return rows


@contextmanager
def changing_documents(project: Project) -> Iterator[None]:
    """Hold the store's write lock (``store.writing``) while changing documents; at the end, still holding it,
    record the documents as they are now, so ``doctune status`` answers without loading LanceDB."""
    from doctune.core.store import writing

    with writing(project):
        try:
            yield
        finally:
            _refresh_quietly(project)


def _refresh_quietly(project: Project) -> None:
    try:
        refresh_snapshot(project)
    except Exception:  # noqa: BLE001 — only a speed-up: without a snapshot, status reads the table itself
        pass
