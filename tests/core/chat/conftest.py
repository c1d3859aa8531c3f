"""A project of two paged PDF documents, ingested and indexed once, for the chat tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from doctune.core.events import CancelToken, Events

PAGES = {
    "lighthouse.pdf": [
        "The Grellan Point lighthouse was lit for the first time in 1858. Its keeper was Tomas Vey.",
        "The Grellan Point lamp burns colza oil and can be seen from 31 kilometres away on a clear night.",
    ],
    "railway.pdf": [
        "The Kessbury Ridge railway climbs 640 metres through eleven tunnels.",
        "The Kessbury Ridge locomotive Brass Hen was built in 1903 and still pulls the summer trains.",
    ],
}


def write_pdf(path: Path, pages: list[str]) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    pdf.output(str(path))
    return path


@pytest.fixture(scope="session")
def pdf_project(tmp_path_factory):
    from doctune.core.ingest import IngestParams
    from doctune.core.ingest import run as ingest
    from doctune.core.project import Project
    from doctune.core.rag import IndexParams
    from doctune.core.rag import run as index

    project = Project.create(tmp_path_factory.mktemp("pdfs") / "project")
    folder = tmp_path_factory.mktemp("pdf-docs")
    paths = [write_pdf(folder / name, pages) for name, pages in PAGES.items()]
    ingest(IngestParams(project_dir=project.root, paths=paths, chunk_tokens=32, chunk_overlap=0),
           events=Events(), cancel=CancelToken())
    index(IndexParams(project_dir=project.root), events=Events(), cancel=CancelToken())
    return project


@pytest.fixture(scope="session")
def chat_gguf(tiny_gguf) -> Path:
    return tiny_gguf("qwen2", "f16")
