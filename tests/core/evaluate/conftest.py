"""Fixtures of the evaluation tests: the tiny student as GGUF, projects holding the sample questions."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def base_gguf_file(tiny_model, artifacts_dir) -> Path:
    """The untrained tiny Qwen2 as an F16 GGUF (built once, kept between runs)."""
    from doctune.core.export.gguf import write_gguf

    folder = tiny_model("qwen2")
    path = artifacts_dir / "eval" / f"{folder.name}.f16.gguf"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_gguf(folder, path)
    return path


@pytest.fixture
def small_answers(project):
    """Short answers keep the tests fast: the tiny model would otherwise babble up to the limit."""
    project.config.rag.max_answer_tokens = 16
    project.config.rag.n_ctx = 512
    project.save()
    return project
