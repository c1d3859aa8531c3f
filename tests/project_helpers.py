"""Helpers shared by tests of several steps: a project's documents ingested for real."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def ingest(project, paths: Iterable[Path], **options) -> None:
    """Ingest ``paths`` into ``project`` (``options``: other ``IngestParams`` fields), with no event output."""
    from doctune.core.events import CancelToken, Events
    from doctune.core.ingest import IngestParams, run

    run(IngestParams(project_dir=project.root, paths=list(paths), **options), events=Events(), cancel=CancelToken())
