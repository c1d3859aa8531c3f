"""Fixtures of the synthesis tests: projects with real ingested documents, the fault server."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "teachers"))

from fault_server import FaultServer  # noqa: E402

SAMPLE_DOCS = Path(__file__).parents[3] / "resources" / "sample" / "docs"


def ingest(project, files: list[Path]) -> None:
    from doctune.core.events import CancelToken, Events
    from doctune.core.ingest import IngestParams, run

    run(IngestParams(project_dir=project.root, paths=files), events=Events(), cancel=CancelToken())


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


@pytest.fixture
def fault_server():
    """``fault_server(fault=None, delay_s=0, api_key=None)`` → a running FaultServer (stopped after the test)."""
    servers: list[FaultServer] = []

    def start(**kwargs) -> FaultServer:
        server = FaultServer(**kwargs).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)
