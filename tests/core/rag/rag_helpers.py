"""Helpers of the retrieval tests: ingest files, index a project, write small documents."""
from __future__ import annotations

from pathlib import Path

from doctune.core.events import CancelToken, Events, RecordingSink


def index(project, **options):
    from doctune.core.rag import IndexParams, run

    sink = RecordingSink()
    result = run(IndexParams(project_dir=project.root, **options), events=Events(sink), cancel=CancelToken())
    return result, sink


def write_docs(folder: Path, docs: dict[str, str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in docs.items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
