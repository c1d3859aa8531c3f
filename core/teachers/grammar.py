"""JSON schema → GBNF grammar for llama.cpp, safe for weak models.

llama-cpp-python's converter writes a bounded string as a chain of nested
optional ``char`` rules, which llama.cpp refuses beyond a few hundred
characters; it also lets raw control characters into strings, which strict
JSON parsers reject. This module rewrites both: bounded strings become
``char{m,n}`` repetitions and ``char`` excludes ``\\x00-\\x1F`` and ``\\x7F``
(see FIELD-NOTES).
"""
from __future__ import annotations

import json
import re
from typing import Any

SAFE_CHAR_RULE = (
    r'char ::= [^"\\\x00-\x1F\x7F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'
)
_STRING_RULE = re.compile(r'^(?P<name>[\w-]+) ::= "\\"" (?P<body>.*) "\\"" space$')


def unbounded_strings(schema: Any, where: str = "") -> list[str]:
    """Paths of string fields without ``maxLength`` (a weak model may never close them)."""
    found: list[str] = []
    if isinstance(schema, dict):
        if schema.get("type") == "string" and "maxLength" not in schema and "enum" not in schema:
            found.append(where or "(root)")
        for key, value in schema.items():
            found += unbounded_strings(value, f"{where}.{key}" if where else key)
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            found += unbounded_strings(value, f"{where}[{index}]")
    return found


def _compact_string_body(body: str) -> str | None:
    """``char char (char (char)?)?`` → ``char{2,4}``; None if ``body`` is not such a chain."""
    if re.sub(r"char|\(|\)\?|\s", "", body):
        return None
    total = body.count("char")
    optional = body.count("(char")
    if total == 0:
        return None
    return f"char{{{total - optional},{total}}}"


def schema_to_gbnf(schema: dict[str, Any]) -> str:
    """A GBNF grammar accepting exactly the JSON objects ``schema`` describes (strings bounded, clean)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    unbounded = unbounded_strings(schema)
    if unbounded:
        raise ValueError(f"string fields without maxLength: {', '.join(unbounded)}")
    lines = []
    for line in json_schema_to_gbnf(json.dumps(schema)).splitlines():
        if line.startswith("char ::="):
            lines.append(SAFE_CHAR_RULE)
            continue
        match = _STRING_RULE.match(line)
        compact = _compact_string_body(match.group("body")) if match else None
        if compact is not None:
            line = f'{match.group("name")} ::= "\\"" {compact} "\\"" space'
        lines.append(line)
    return "\n".join(lines) + "\n"
