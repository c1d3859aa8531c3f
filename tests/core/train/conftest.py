"""Fixtures for training tests: the fictional sample QA pairs as training items, and a project with a student."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from doctune.core.fsio import JsonlAppender
from doctune.core.resources import resource_path


def sample_qa() -> list[dict]:
    lines = resource_path("sample/questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def qa_item(record: dict) -> dict:
    return {"id": record["id"], "kind": "qa", "chunk_id": record["doc"], "recipe": "qa",
            "messages": [{"role": "user", "content": record["question"]},
                         {"role": "assistant", "content": record["answer"]}]}


def write_items(path: Path, records: list[dict]) -> Path:
    with JsonlAppender(path, fsync=False) as log:
        log.append_many(records)
    return path


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
