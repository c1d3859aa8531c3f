"""Shared fixtures: offline settings, tiny models built once per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ARTIFACTS = Path(__file__).parent / ".artifacts"


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """A folder kept between runs (git-ignored) for expensive, fingerprinted builds."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def tiny_model(artifacts_dir):
    """``tiny_model("qwen2")`` → folder of a tiny random model (built once, cached).

    Families: llama, qwen2, qwen3, mistral. Each folder holds safetensors,
    config, generation config, the tiny tokenizer and its ChatML template.
    """
    from doctune.core.tiny import ensure_tiny_model

    def build(family: str = "qwen2", seed: int = 0) -> Path:
        return ensure_tiny_model(family, artifacts_dir / "tiny", seed=seed)

    return build


@pytest.fixture
def project(tmp_path):
    """A fresh, empty project."""
    from doctune.core.project import Project

    return Project.create(tmp_path / "project")
