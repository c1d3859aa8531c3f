"""Shared fixtures: offline settings, tiny models built once per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ARTIFACTS = Path(__file__).parent / ".artifacts"

# Property tests draw the same examples on every run, so CI results are reproducible;
# `pytest --hypothesis-profile=explore` draws fresh, many more examples to look for new failures.
settings.register_profile("default", max_examples=200, derandomize=True, deadline=None)
settings.register_profile("explore", max_examples=3000, deadline=None,
                          suppress_health_check=list(HealthCheck))
settings.load_profile("default")


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


@pytest.fixture(scope="session")
def lab_reader(artifacts_dir) -> Path:
    """The knowledge lab's reader, as users get it (default settings): built once per machine (about 25 minutes on
    two cores), cached with the tiny models. Only slow tests use it."""
    from doctune.core.lab.reader import ensure_reader

    return ensure_reader(artifacts_dir / "tiny")


@pytest.fixture
def project(tmp_path):
    """A fresh, empty project."""
    from doctune.core.project import Project

    return Project.create(tmp_path / "project")


@pytest.fixture(scope="session")
def tiny_gguf(tiny_model, artifacts_dir):
    """``tiny_gguf("qwen2", "q8_0")`` → GGUF file of a tiny model (written once, cached).

    Formats: f16 and any llama.cpp type ``doctune.core.export.quantize`` offers
    (q8_0, q4_k_m, …). The file name carries the tiny model's fingerprint and a
    hash of the export code, so a change to either writes a fresh file.
    """
    import hashlib

    import doctune.core.export
    from doctune.core.export.gguf import write_gguf
    from doctune.core.export.quantize import quantize_gguf

    code = hashlib.sha256()
    for source in sorted(Path(doctune.core.export.__file__).parent.glob("*.py")):
        code.update(source.read_bytes())
    code_key = code.hexdigest()[:8]

    def build(family: str = "qwen2", fmt: str = "f16", seed: int = 0) -> Path:
        model_dir = tiny_model(family, seed=seed)
        folder = artifacts_dir / "gguf"
        f16 = folder / f"{model_dir.name}-{code_key}-f16.gguf"
        if not f16.exists():
            write_gguf(model_dir, f16)
        if fmt.lower() == "f16":
            return f16
        quantized = folder / f"{model_dir.name}-{code_key}-{fmt.lower()}.gguf"
        if not quantized.exists():
            quantize_gguf(f16, quantized, fmt)
        return quantized

    return build
