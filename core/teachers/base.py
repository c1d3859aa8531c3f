"""The teacher interface every synthesis recipe and the evaluation judge use.

A teacher takes chat messages and returns a ``TeacherReply``: the text, the
parsed JSON object when a schema was asked for (``None`` when the reply holds
no usable object), token counts and the time taken. Two kinds implement it:
a local GGUF model (``local.py``) and an OpenAI-compatible endpoint
(``api.py``).
"""
from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from doctune.core.errors import UserError

CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class TeacherError(UserError):
    """The teacher cannot be used as configured (missing file, refused endpoint, bad settings)."""


class TeacherCallError(Exception):
    """One request failed for good (after its retries); the caller records it and goes on."""


@dataclass
class TeacherReply:
    text: str
    data: Any = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    attempts: int = 1
    meta: dict[str, Any] = field(default_factory=dict)


class Teacher(ABC):
    """Chat messages in; text or a JSON object out, with token usage counted."""

    name: str = "teacher"
    #: Requests the teacher serves at once; the synthesis pipeline sizes its pool from it.
    concurrency: int = 1

    @abstractmethod
    def complete(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any] | None = None,
        max_tokens: int = 512,
        *,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> TeacherReply:
        """Generate one reply; raise ``TeacherCallError`` when it cannot be had."""

    def close(self) -> None:  # noqa: B027 (optional: most teachers hold nothing to release)
        """Release the model or connections."""

    def __enter__(self) -> Teacher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def clean_strings(value: Any) -> Any:
    """Drop control characters from every string of a parsed JSON value."""
    if isinstance(value, str):
        return CONTROL_CHARS.sub("", value).replace("\r", "").strip()
    if isinstance(value, list):
        return [clean_strings(each) for each in value]
    if isinstance(value, dict):
        return {key: clean_strings(each) for key, each in value.items()}
    return value


def extract_json(text: str) -> Any:
    """The JSON object in a reply: the whole text, a fenced block, or the outermost braces.

    Parsing is lenient about raw control characters inside strings (some
    servers' grammars let them through); they are removed afterwards.
    """
    candidates = [text.strip()]
    candidates += [block.strip() for block in _FENCE.findall(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate, strict=False)
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(value, dict):
            return clean_strings(value)
    return None


def missing_required(schema: dict[str, Any] | None, data: Any) -> list[str]:
    """Top-level required keys of ``schema`` that ``data`` lacks (all of them if it is no object)."""
    if not schema:
        return []
    required = list(schema.get("required", []))
    if not isinstance(data, dict):
        return required or ["(a JSON object)"]
    return [key for key in required if key not in data]


def estimate_tokens(text: str) -> int:
    """A rough token count (about four characters per token) for estimates and servers that report none."""
    return max(1, len(text) // 4)
