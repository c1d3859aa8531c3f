"""Fixtures for training tests: the sample QA pairs as an items file, and a project with a tiny student."""
from __future__ import annotations

from pathlib import Path

import pytest
from project_helpers import ingest
from train_helpers import qa_item, sample_qa, write_items

from doctune.core.resources import resource_path
from doctune.core.store import list_chunks


@pytest.fixture
def qa_items_file(tmp_path) -> Path:
    """The 40 fictional sample QA pairs as a JSONL of training items."""
    return write_items(tmp_path / "items.jsonl", [qa_item(r) for r in sample_qa()])


@pytest.fixture
def student_project(project, tiny_model):
    """A project whose student is the tiny Qwen2 model and whose replay is off (fast)."""
    project.config.student.model = str(tiny_model("qwen2"))
    project.config.train.replay_fraction = 0.0
    project.save()
    return project


@pytest.fixture(autouse=True)
def one_cpu_thread():
    """The CI machine's cores are shared: one thread per test process avoids OpenMP spin-waiting (10× slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


DOCS = ["01-vellmora-archipelago.md", "02-quintrel-foundry.md", "03-oswin-tarrabeck.md"]


@pytest.fixture
def chunked_qa_project(student_project, tmp_path):
    """The tiny student's project with three sample documents and their questions as items on their chunks (the
    source passages of distillation and open-book training)."""
    ingest(student_project, [resource_path("sample/docs") / name for name in DOCS])
    first_chunk = {}
    for chunk in list_chunks(student_project):
        first_chunk.setdefault(chunk["doc_path"].rsplit("/", 1)[-1], chunk["id"])
    records = [{"id": r["id"], "kind": "qa", "recipe": "qa", "chunk_id": first_chunk[r["doc"]],
                "messages": [{"role": "user", "content": r["question"]},
                             {"role": "assistant", "content": r["answer"]}]}
               for r in sample_qa() if r["doc"] in first_chunk]
    return student_project, write_items(tmp_path / "items.jsonl", records), records
