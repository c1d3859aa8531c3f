"""``cache/documents.json``: the documents table's rows, stamped with the table version they were read at."""
from __future__ import annotations

from typing import Any

from doctune.core.records.base import Record


class DocumentsSnapshot(Record):
    """A snapshot is trusted only while ``table_version`` is still the table's newest version on disk."""

    WHAT = "documents snapshot"

    table_version: int
    rows: list[dict[str, Any]]
