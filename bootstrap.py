#!/usr/bin/env python3
"""Set up DocTune in a local virtual environment, then start it or test it.

    python3 bootstrap.py app     # set up, then open DocTune
    python3 bootstrap.py test    # set up, then run the whole test suite

Set-up is idempotent and quick once done: it creates ``.venv`` beside this
file, installs PyTorch first (so no other package drags in a different build),
then llama-cpp-python (compiled from source on first install; pip caches the
wheel), then DocTune itself in editable mode. It is redone only when
``pyproject.toml`` or ``setup.py`` change.

Environment knobs for accelerated builds (see README):
  DOCTUNE_TORCH_SPEC       pip requirement for torch   (default: torch==2.13.0)
  DOCTUNE_TORCH_INDEX_URL  extra index for torch wheels (e.g. a CUDA index)
  CMAKE_ARGS               passed to the llama.cpp build (e.g. -DGGML_CUDA=on)
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".doctune-setup"
DEFAULT_TORCH = "torch==2.13.0"
FALLBACK_TORCH = "torch>=2.4"
PYTEST_NO_TESTS = 5


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def run(*cmd: str | Path, **kwargs) -> subprocess.CompletedProcess:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def pip(*args: str) -> None:
    run(venv_python(), "-m", "pip", "install", "--disable-pip-version-check", *args)


def setup_fingerprint(extra: str) -> str:
    digest = hashlib.sha256(extra.encode())
    for name in ("pyproject.toml", "setup.py", "bootstrap.py"):
        digest.update((ROOT / name).read_bytes())
    digest.update(os.environ.get("DOCTUNE_TORCH_SPEC", "").encode())
    digest.update(os.environ.get("CMAKE_ARGS", "").encode())
    return digest.hexdigest()


def install_torch() -> None:
    spec = os.environ.get("DOCTUNE_TORCH_SPEC", DEFAULT_TORCH)
    index = os.environ.get("DOCTUNE_TORCH_INDEX_URL")
    extra = ["--extra-index-url", index] if index else []
    try:
        pip(spec, *extra)
    except subprocess.CalledProcessError:
        if spec != DEFAULT_TORCH:
            raise
        print(f"{DEFAULT_TORCH} is not available for this Python/platform; installing {FALLBACK_TORCH}.")
        pip(FALLBACK_TORCH, *extra)


def ensure_setup(with_dev: bool) -> None:
    if sys.version_info < (3, 10):
        sys.exit("DocTune needs Python 3.10 or newer.")
    extras = ".[dev]" if with_dev else "."
    fingerprint = setup_fingerprint(extras)
    if STAMP.exists() and STAMP.read_text() in (fingerprint, setup_fingerprint(".[dev]")):
        return
    if not venv_python().exists():
        print(f"Creating a virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip("--upgrade", "pip", "setuptools>=68", "wheel")
    install_torch()
    print("Installing llama-cpp-python (the first time compiles llama.cpp: several minutes)...")
    pip("llama-cpp-python[server]>=0.3.16")
    pip("-e", extras)
    STAMP.write_text(fingerprint)


def start_app(args: list[str]) -> int:
    return subprocess.call([str(venv_python()), "-m", "doctune.core", "gui", *args])


def run_tests(args: list[str]) -> int:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    code = subprocess.call([str(venv_python()), "-m", "pytest", *args], cwd=ROOT, env=env)
    if code == PYTEST_NO_TESTS:
        print("No test ran: that counts as a failure.")
        return 1
    return code


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("app", "test", "setup"):
        print(__doc__)
        return 1
    action, rest = argv[0], argv[1:]
    ensure_setup(with_dev=action == "test")
    if action == "app":
        return start_app(rest)
    if action == "test":
        return run_tests(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
