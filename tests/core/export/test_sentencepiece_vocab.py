"""A Llama 2 / Mistral v0.1 style (SentencePiece-style BPE) tokenizer → GGUF "llama" vocabulary → verified."""
from __future__ import annotations

import gguf
import pytest

from doctune.core.export.gguf import write_gguf
from doctune.core.export.verify import build_reference, verify_gguf
from doctune.core.resources import resource_path
from doctune.core.tiny import build_sentencepiece_model

PROBES = [
    "Digits 0123456789 and 3.14159, 1,000,000.",
    "café, naïve, Ünïcödé, 東京 and emoji 🦙🎉 fall back to bytes.",
    " one leading space,   three inner spaces\tand a tab",
    "\n\nnewlines first\nthen more\n\n\nand </s> or <s> inside text",
    "[INST] What is the Lanternfall festival? [/INST]",
]


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory):
    return build_sentencepiece_model("mistral", tmp_path_factory.mktemp("spm") / "model")


@pytest.fixture(scope="module")
def spm_gguf(spm_model, tmp_path_factory):
    return write_gguf(spm_model, tmp_path_factory.mktemp("spm-gguf") / "model.gguf")


def test_vocabulary_is_written_as_sentencepiece(spm_model, spm_gguf):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(spm_model)
    reader = gguf.GGUFReader(spm_gguf)
    field = reader.get_field
    assert field("tokenizer.ggml.model").contents() == "llama"
    tokens = field("tokenizer.ggml.tokens").contents()
    types = field("tokenizer.ggml.token_type").contents()
    scores = field("tokenizer.ggml.scores").contents()
    assert len(tokens) == len(types) == len(scores) == reader.get_field("llama.vocab_size").contents()
    assert types[tokenizer.unk_token_id] == gguf.TokenType.UNKNOWN
    assert types[tokenizer.bos_token_id] == types[tokenizer.eos_token_id] == gguf.TokenType.CONTROL
    assert types[tokens.index("<0x41>")] == gguf.TokenType.BYTE
    assert len(tokenizer) < len(tokens) and set(types[len(tokenizer):]) == {gguf.TokenType.UNUSED}
    assert field("tokenizer.ggml.bos_token_id").contents() == tokenizer.bos_token_id
    assert field("tokenizer.ggml.eos_token_id").contents() == tokenizer.eos_token_id
    assert field("tokenizer.ggml.add_bos_token").contents() is True
    assert field("tokenizer.ggml.add_space_prefix").contents() is True
    assert "[INST]" in field("tokenizer.chat_template").contents()


def test_llama_cpp_tokenizes_like_transformers(spm_model, spm_gguf):
    from transformers import AutoTokenizer

    from doctune.core.llamacpp import load_llama

    tokenizer = AutoTokenizer.from_pretrained(spm_model)
    llm = load_llama(spm_gguf, n_ctx=256, vocab_only=True)
    byte_fallbacks = 0
    whole_article = resource_path("sample/docs/04-lanternfall-festival.md").read_text(encoding="utf-8")
    for text in PROBES + [whole_article]:
        expected = tokenizer.encode(text)
        assert llm.tokenize(text.encode(), add_bos=True, special=True) == expected, text
        byte_fallbacks += sum(token.startswith("<0x") for token in tokenizer.convert_ids_to_tokens(expected))
        pieces = llm.detokenize(expected[1:]).decode()  # llama-cpp-python keeps the ▁ prefix as a space
        assert pieces.removeprefix(" ") == tokenizer.decode(expected, skip_special_tokens=True)
    assert byte_fallbacks > 0


def test_export_verification_passes(spm_model, spm_gguf):
    reference = build_reference(spm_model, answer_budget=16)
    report = verify_gguf(spm_gguf, reference, "f16", min_top1=0.99, answer_budget=16)
    assert report["passed"], report["problems"]
    assert report["checks"]["tokenizer"]["mismatches"] == []
    assert report["checks"]["top1"]["agreement"] >= 0.99
