"""Schema → grammar: compact bounded strings, no control characters, unbounded strings refused."""
from __future__ import annotations

import pytest

from doctune.core.teachers.base import extract_json, missing_required
from doctune.core.teachers.grammar import schema_to_gbnf, unbounded_strings


def test_bounded_strings_become_repetitions_and_chars_exclude_controls():
    schema = {"type": "object", "properties": {
        "text": {"type": "string", "minLength": 40, "maxLength": 1500},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "minItems": 2, "maxItems": 3},
        "letter": {"type": "string", "enum": ["A", "B", "C", "D"]}}, "required": ["text", "tags", "letter"]}
    grammar = schema_to_gbnf(schema)
    assert "char{40,1500}" in grammar and "char{0,12}" in grammar
    assert r'[^"\\\x00-\x1F\x7F]' in grammar
    assert "(char (char" not in grammar


def test_grammar_with_long_strings_loads_in_llama_cpp():
    from llama_cpp import LlamaGrammar

    schema = {"type": "object", "properties": {"text": {"type": "string", "minLength": 10, "maxLength": 2000}},
              "required": ["text"]}
    assert LlamaGrammar.from_string(schema_to_gbnf(schema), verbose=False) is not None


def test_unbounded_strings_are_refused():
    schema = {"type": "object", "properties": {"a": {"type": "string"},
                                               "b": {"type": "array", "items": {"type": "string"}}}}
    assert unbounded_strings(schema) == ["properties.a", "properties.b.items"]
    with pytest.raises(ValueError, match="maxLength"):
        schema_to_gbnf(schema)


def test_extract_json_variants():
    assert extract_json('{"a": 1}') == {"a": 1}
    assert extract_json('Sure:\n```json\n{"a": "x"}\n```\nDone') == {"a": "x"}
    assert extract_json('prefix {"a": "line\nbreak"} suffix') == {"a": "line\nbreak"}
    assert extract_json("[1, 2]") is None and extract_json("nothing") is None
    assert missing_required({"required": ["a", "b"]}, {"a": 1}) == ["b"]
    assert missing_required({"required": ["a"]}, None) == ["a"]
