"""Start and stop real ``python -m llama_cpp.server`` processes on 127.0.0.1 for tests and the benchmark."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def llama_server_process(model: Path, n_ctx: int = 2048, threads: int = 2,
                         timeout_s: float = 90) -> Iterator[tuple[str, subprocess.Popen]]:
    """Yield the server's base URL (``http://127.0.0.1:PORT/v1``) and its process (a test may kill it);
    SIGTERM it afterwards."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", str(n_ctx), "--n_threads", str(threads), "--verbose", "false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {process.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{base_url}/models", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not start in time")
            time.sleep(0.2)
        yield base_url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stderr.close()


@contextmanager
def llama_server(model: Path, n_ctx: int = 2048, threads: int = 2, timeout_s: float = 90) -> Iterator[str]:
    """Yield the server's base URL (``http://127.0.0.1:PORT/v1``); SIGTERM it afterwards."""
    with llama_server_process(model, n_ctx, threads, timeout_s) as (base_url, _process):
        yield base_url


@contextmanager
def llama_servers(model: Path, count: int, **options) -> Iterator[list[tuple[str, subprocess.Popen]]]:
    """``count`` servers of the same model, each on its own port: [(base URL, process), …]."""
    with ExitStack() as stack:
        yield [stack.enter_context(llama_server_process(model, **options)) for _ in range(count)]
