"""The bundled sample corpus, ingested and indexed once per session, for the retrieval tests."""
from __future__ import annotations

import shutil

import pytest
from project_helpers import ingest
from rag_helpers import index

from doctune.core.resources import resource_path

SAMPLE_CHUNK_TOKENS = 96
SAMPLE_CHUNK_OVERLAP = 24


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
