"""Where bundled resources (prompts, sample documents, tiny-model text) live."""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def resources_root() -> Path:
    return Path(str(files("doctune.resources")))


def resource_path(relative: str) -> Path:
    return resources_root() / relative
