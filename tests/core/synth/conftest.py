"""Fixtures of the synthesis tests: the fault-injecting server."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "teachers"))

from fault_server import FaultServer  # noqa: E402


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
