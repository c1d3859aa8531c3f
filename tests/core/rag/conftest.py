"""Projects with documents ingested (and indexed) for the retrieval and chat tests."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from doctune.core.events import CancelToken, Events, RecordingSink
from doctune.core.resources import resource_path

SAMPLE_CHUNK_TOKENS = 96
SAMPLE_CHUNK_OVERLAP = 24


def ingest(project, paths, **options) -> None:
    from doctune.core.ingest import IngestParams, run

    run(IngestParams(project_dir=project.root, paths=list(paths), **options), events=Events(), cancel=CancelToken())


def index(project, **options):
    from doctune.core.rag import IndexParams, run

    sink = RecordingSink()
    result = run(IndexParams(project_dir=project.root, **options), events=Events(sink), cancel=CancelToken())
    return result, sink


@pytest.fixture(scope="session")
def sample_project(tmp_path_factory):
    """The bundled fictional corpus, chunked small (so retrieval has to work) and indexed once per session."""
    from doctune.core.project import Project

    project = Project.create(tmp_path_factory.mktemp("sample") / "project")
    docs = tmp_path_factory.mktemp("sample-docs")
    for source in sorted(resource_path("sample/docs").glob("*.md")):
        shutil.copy(source, docs / source.name)
    ingest(project, [docs], chunk_tokens=SAMPLE_CHUNK_TOKENS, chunk_overlap=SAMPLE_CHUNK_OVERLAP)
    index(project)
    return project


def write_docs(folder: Path, docs: dict[str, str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in docs.items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
