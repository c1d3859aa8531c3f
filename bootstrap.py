#!/usr/bin/env python3
"""Set up DocTune in a local virtual environment, then start it or test it.

    python3 bootstrap.py app     # set up, then open DocTune
    python3 bootstrap.py test    # set up, then run the gates and the whole test suite
    python3 bootstrap.py gates   # set up, then run only the gates

The gates run before the tests: ruff (lint and import order), mypy on
doctune.core against tests/mypy-baseline.txt, and the import contracts
(lint-imports, [tool.importlinter] in pyproject.toml). ``test`` stops before
pytest when one fails; ``test --no-gates ...`` runs pytest alone. Arguments
after ``test`` go to pytest.

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


def venv_script(name: str) -> Path:
    return VENV / ("Scripts" if os.name == "nt" else "bin") / (name + (".exe" if os.name == "nt" else ""))


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


def gates() -> list[tuple[str, list[str | Path], str]]:
    """(name, command, what to do when it fails) of each check that runs before the tests."""
    return [
        ("ruff: lint and import order", [venv_script("ruff"), "check"],
         "Fix what ruff lists above; `.venv/bin/ruff check --fix` sorts imports and fixes what it can by itself."),
        ("mypy: types of doctune.core against tests/mypy-baseline.txt", [venv_python(), "tests/typecheck.py"],
         "Fix the errors it lists above (a new file must have none); the baseline may only shrink."),
        ("import contracts: layers, steps' public surfaces, no cycles", [venv_script("lint-imports"), "--no-logo"],
         "An import goes up a layer, reaches into another step's modules or closes a cycle (each is listed above "
         "with its line); see the layers in README.md, Development."),
    ]


def run_gates() -> int:
    """Run every gate (all of them, so one run shows every problem); 1 if any failed."""
    failed = []
    for name, command, advice in gates():
        print(f"\n== {name}", flush=True)
        if subprocess.call([str(c) for c in command], cwd=ROOT) != 0:
            failed.append((name, advice))
    for name, advice in failed:
        print(f"\nFAILED {name}\n  {advice}")
    if failed:
        return 1
    print("\nAll gates passed.\n", flush=True)
    return 0


def run_tests(args: list[str]) -> int:
    if "--no-gates" in args:
        args = [a for a in args if a != "--no-gates"]
    elif run_gates():
        print("\nThe tests did not run because a gate failed (`python3 bootstrap.py test --no-gates` runs them).")
        return 1
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    code = subprocess.call([str(venv_python()), "-m", "pytest", *args], cwd=ROOT, env=env)
    if code == PYTEST_NO_TESTS:
        print("No test ran: that counts as a failure.")
        return 1
    return code


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("app", "test", "gates", "setup"):
        print(__doc__)
        return 1
    action, rest = argv[0], argv[1:]
    ensure_setup(with_dev=action in ("test", "gates"))
    if action == "app":
        return start_app(rest)
    if action == "test":
        return run_tests(rest)
    if action == "gates":
        return run_gates()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
