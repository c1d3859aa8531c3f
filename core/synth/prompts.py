"""Prompt templates of the recipes, kept as TOML files in ``resources/prompts/``.

Each file has a ``system`` and a ``user`` template (``string.Template``:
``$passage``, ``$title`` …; document text may contain braces safely) and
optional lists (``aspects``, ``styles``). A prompt's hash covers its file, so
items record exactly which wording produced them.
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from functools import cache
from string import Template
from typing import Any

from doctune.core.resources import resource_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Prompt:
    name: str
    system: str
    user: str
    lists: dict[str, list[str]] = field(default_factory=dict)
    hash: str = ""

    def messages(self, **values: Any) -> list[dict[str, str]]:
        text = {key: str(value) for key, value in values.items()}
        return [
            {"role": "system", "content": Template(self.system).safe_substitute(text)},
            {"role": "user", "content": Template(self.user).safe_substitute(text)},
        ]

    def pick(self, list_name: str, index: int) -> str:
        options = self.lists[list_name]
        return options[index % len(options)]


@cache
def load_prompt(name: str) -> Prompt:
    path = resource_path(f"prompts/{name}.toml")
    raw = path.read_bytes()
    data = tomllib.loads(raw.decode("utf-8"))
    lists = {key: list(value) for key, value in data.items() if isinstance(value, list)}
    return Prompt(name, data["system"].strip(), data["user"].strip(), lists, hashlib.sha256(raw).hexdigest()[:16])
