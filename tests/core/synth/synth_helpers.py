"""Helpers of the synthesis tests: projects with real ingested documents, endpoint settings."""
from __future__ import annotations

from pathlib import Path

SAMPLE_DOCS = Path(__file__).parents[3] / "resources" / "sample" / "docs"


def sample_docs(count: int) -> list[Path]:
    return sorted(SAMPLE_DOCS.glob("*.md"))[:count]


def use_endpoint(project, base_url: str, **teacher: object) -> None:
    project.config.teacher.kind = "openai"
    project.config.teacher.base_url = base_url
    project.config.teacher.model = "test"
    for key, value in {"structured_output": "llama_cpp", "retry_base_s": 0.01, "retry_max_s": 0.05,
                       "max_retries": 3, "timeout_s": 5.0, **teacher}.items():
        setattr(project.config.teacher, key, value)
    project.save()


def per_chunk_items(synth, recipes: dict[str, float], per_chunk: int) -> None:
    """``recipes`` with ``per_chunk`` items each per chunk: the fixed plan these tests count on, not the default
    amplification target (whose item count depends on the documents' length)."""
    synth.recipes, synth.per_chunk, synth.amplification = recipes, per_chunk, 0.0
