"""JSON schemas of what the teacher writes for each recipe, bounded by the project's settings.

Every string has a ``maxLength`` (a weak model under a grammar otherwise
writes one string until the token limit) and sensible ``minLength``.
"""
from __future__ import annotations

from typing import Any


def _string(low: int, high: int) -> dict[str, Any]:
    return {"type": "string", "minLength": low, "maxLength": high}


def _object(**properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


def qa_schema(s) -> dict[str, Any]:
    explanation = max(20, s.max_answer_chars // 2)
    return _object(question=_string(10, s.max_question_chars), answer=_string(1, s.max_answer_chars),
                   explanation=_string(1, explanation))


def question_schema(s) -> dict[str, Any]:
    return _object(question=_string(10, s.max_question_chars))


def document_schema(s) -> dict[str, Any]:
    return _object(text=_string(min(s.min_document_chars, s.max_document_chars), s.max_document_chars))


def entities_schema(s) -> dict[str, Any]:
    return _object(
        summary=_string(10, s.max_answer_chars),
        entities={"type": "array", "items": _string(1, 60), "minItems": 2, "maxItems": s.entigraph_max_entities},
    )


def mc_schema(s) -> dict[str, Any]:
    option = max(20, s.max_answer_chars // 4)
    return _object(
        question=_string(10, s.max_question_chars),
        options={"type": "array", "items": _string(1, option), "minItems": 4, "maxItems": 4},
        answer={"type": "string", "enum": ["A", "B", "C", "D"]},
    )


def open_schema(s) -> dict[str, Any]:
    return _object(question=_string(10, s.max_question_chars), answer=_string(1, s.max_answer_chars))


def judge_schema() -> dict[str, Any]:
    return _object(supported={"type": "boolean"}, reason=_string(0, 200))


def output_tokens(schema: dict[str, Any]) -> int:
    """Tokens enough for the longest reply the schema allows (at 2 characters per token: room for weak models)."""
    def chars(node: dict[str, Any]) -> int:
        kind = node.get("type")
        if kind == "object":
            return sum(chars(child) + len(name) + 6 for name, child in node.get("properties", {}).items()) + 4
        if kind == "array":
            return chars(node["items"]) * node.get("maxItems", 1) + 2
        if kind == "string":
            return node.get("maxLength", 8) + 2 if "enum" not in node else 4
        return 8
    return chars(schema) // 2 + 16


def check(schema: dict[str, Any], data: Any, where: str = "reply") -> list[str]:
    """Problems of ``data`` against the subset of JSON schema these recipes use (empty: valid)."""
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(data, dict):
            return [f"{where} is not an object"]
        problems = [f"{where}.{key} is missing" for key in schema.get("required", []) if key not in data]
        for key, child in schema.get("properties", {}).items():
            if key in data:
                problems += check(child, data[key], f"{where}.{key}")
        return problems
    if kind == "array":
        if not isinstance(data, list):
            return [f"{where} is not a list"]
        problems = []
        if not schema.get("minItems", 0) <= len(data) <= schema.get("maxItems", len(data)):
            problems.append(f"{where} has {len(data)} entries")
        for index, each in enumerate(data):
            problems += check(schema["items"], each, f"{where}[{index}]")
        return problems
    if kind == "string":
        if not isinstance(data, str):
            return [f"{where} is not text"]
        if "enum" in schema and data not in schema["enum"]:
            return [f"{where} is not one of {schema['enum']}"]
        if len(data.strip()) < schema.get("minLength", 0):
            return [f"{where} is too short"]
        if len(data) > schema.get("maxLength", len(data)):
            return [f"{where} is too long"]
        return []
    if kind == "boolean" and not isinstance(data, bool):
        return [f"{where} is not true/false"]
    return []
