"""Fixtures for training tests: the sample QA pairs as an items file, and a project with a tiny student."""
from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import qa_item, sample_qa, write_items


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
