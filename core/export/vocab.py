"""The tokenizer part of a GGUF: tokens, types, merges or scores, special ids, template.

Byte-level BPE vocabularies are written as llama.cpp's ``gpt2`` model (with
merges); SentencePiece-style BPE (byte fallback, ▁ for spaces) as its
``llama`` model (with scores).

For byte-level BPE, llama.cpp re-implements each tokenizer's splitting rules and picks them by the
``tokenizer.ggml.pre`` name, so the name must describe the Hugging Face
tokenizer's pre-tokenizer, not the model architecture. We detect it by running
a probe text through the model's own pre-tokenizer and through reference
pre-tokenizers built from the split rules llama.cpp knows, and comparing the
hashes of the pieces. An unknown pre-tokenizer is an error unless a fallback
name is given explicitly (then a warning says which one is used).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import gguf

from doctune.core.events import Events
from doctune.core.export.errors import UnsupportedModelError

PROBE_TEXT = (
    "Hello world! I'LL say it's 1234567 times,\n\n  indented\ttabs  and   spaces \r\n"
    "Ünïcödé 中文字符 émoji 🦙🦙 3.14159 $1,000,000 don't WON'T you've 'quoted' \n"
    "snake_case camelCase ALLCAPS a1b2c3 --flag=value <tag> (paren) [bracket] {brace}"
)

_CONTRACTIONS = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
_LLAMA3_SPLIT = _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_QWEN2_SPLIT = _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def _reference_pre_tokenizers() -> dict[str, Any]:
    """llama.cpp pre-tokenizer name → an equivalent ``tokenizers`` pre-tokenizer."""
    from tokenizers import Regex
    from tokenizers import pre_tokenizers as pt

    def split_then_bytes(pattern: str) -> Any:
        return pt.Sequence([
            pt.Split(Regex(pattern), behavior="isolated", invert=False),
            pt.ByteLevel(add_prefix_space=False, use_regex=False),
        ])

    return {
        "gpt-2": pt.ByteLevel(add_prefix_space=False, use_regex=True),
        "llama-bpe": split_then_bytes(_LLAMA3_SPLIT),
        "qwen2": split_then_bytes(_QWEN2_SPLIT),
        "smollm": pt.Sequence([pt.Digits(individual_digits=True), pt.ByteLevel(add_prefix_space=False, use_regex=True)]),
    }


def reference_pre_tokenizer(name: str) -> Any:
    """The ``tokenizers`` pre-tokenizer that splits text as llama.cpp's pre-tokenizer ``name`` does."""
    return _reference_pre_tokenizers()[name]


def _pieces_hash(pre_tokenizer: Any) -> str:
    pieces = [piece for piece, _ in pre_tokenizer.pre_tokenize_str(PROBE_TEXT)]
    return hashlib.sha256(json.dumps(pieces).encode()).hexdigest()


@lru_cache(maxsize=1)
def known_pre_tokenizer_hashes() -> dict[str, str]:
    """Hash of the probe's pieces → llama.cpp pre-tokenizer name."""
    return {_pieces_hash(pre): name for name, pre in _reference_pre_tokenizers().items()}


def detect_pre_tokenizer(backend: Any, fallback: str | None = None, events: Events | None = None) -> str:
    """The llama.cpp ``tokenizer.ggml.pre`` name matching ``backend``'s split rules."""
    if backend.pre_tokenizer is not None:
        found = known_pre_tokenizer_hashes().get(_pieces_hash(backend.pre_tokenizer))
        if found:
            return found
    known = ", ".join(sorted(known_pre_tokenizer_hashes().values()))
    if fallback:
        if events:
            events.warning(
                f"The tokenizer's splitting rules match none llama.cpp is known to implement ({known}); "
                f"writing pre-tokenizer '{fallback}' as configured. Verification will show any mismatch.",
            )
        return fallback
    raise UnsupportedModelError(
        f"The tokenizer's pre-tokenizer matches none that llama.cpp implements ({known}).",
        "Set [export] pretokenizer_fallback in doctune.toml (for example 'gpt-2') to try one anyway; "
        "the export's tokenizer check will then report whether it matches.",
    )


@dataclass
class Vocab:
    tokens: list[str]
    token_types: list[int]
    pre: str
    add_bos: bool
    add_eos: bool
    model: str = "gpt2"
    scores: list[float] | None = None  # SentencePiece-style only: merge priority per token
    add_space_prefix: bool = False  # SentencePiece-style only: ▁ before the text


def _load_fast_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    if not (model_dir / "tokenizer.json").is_file():
        raise UnsupportedModelError(
            f"{model_dir} has no tokenizer.json.",
            "The export needs the model's fast (Hugging Face tokenizers) tokenizer files beside the weights; "
            "copy tokenizer.json and tokenizer_config.json from the base model.",
        )
    return AutoTokenizer.from_pretrained(model_dir)


BYTE_TOKENS = [f"<0x{value:02X}>" for value in range(256)]
SPACE_MARK = "\u2581"  # ▁, SentencePiece's visible space


def _is_sentencepiece_style(tokenizer_json: dict[str, Any]) -> bool:
    """BPE with byte fallback, ``<0xXX>`` byte tokens and ▁ for spaces (Llama 2, Mistral v0.1–0.3).

    llama.cpp runs such vocabularies with its SentencePiece tokenizer (``llama``
    model): spaces become ▁, the highest-scoring adjacent pair is merged first,
    and a character outside the vocabulary falls back to its byte tokens.
    """
    model = tokenizer_json["model"]
    rules = json.dumps([tokenizer_json.get("normalizer"), tokenizer_json.get("pre_tokenizer")], ensure_ascii=False)
    return (model.get("type") == "BPE" and bool(model.get("byte_fallback"))
            and all(token in model.get("vocab", {}) for token in BYTE_TOKENS)
            and SPACE_MARK in rules and "ByteLevel" not in rules)


def _tokenizer_model(backend: Any, model_dir: Path) -> str:
    """``gpt2`` (byte-level BPE) or ``llama`` (SentencePiece-style BPE); a clear error otherwise."""
    tokenizer_json = json.loads(backend.to_str())
    model = tokenizer_json["model"]
    if _is_sentencepiece_style(tokenizer_json):
        return "llama"
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise UnsupportedModelError(
            f"The tokenizer in {model_dir} is a {model.get('type')} model"
            f"{' with byte fallback' if model.get('byte_fallback') else ''} that is neither byte-level BPE "
            "(Llama 3, Qwen2/2.5/3, SmolLM2, Mistral Nemo style) nor SentencePiece-style BPE with <0xXX> byte "
            "tokens and ▁ for spaces (Llama 2, Mistral v0.1–0.3 style), the two kinds the export can write.",
            "Choose a student whose tokenizer is of one of these kinds.",
        )
    return "gpt2"


def build_vocab(model_dir: Path, n_vocab: int, fallback_pre: str | None = None, events: Events | None = None) -> Vocab:
    """Tokens padded to ``n_vocab`` embedding rows with unused ``[PAD…]`` entries."""
    tokenizer = _load_fast_tokenizer(model_dir)
    backend = tokenizer.backend_tokenizer
    kind = _tokenizer_model(backend, model_dir)
    by_id = {index: token for token, index in backend.get_vocab(with_added_tokens=True).items()}
    if len(by_id) > n_vocab:
        raise UnsupportedModelError(
            f"The tokenizer in {model_dir} has {len(by_id)} tokens but the model only {n_vocab} embedding rows.",
            "The tokenizer files do not belong to these weights; copy the base model's tokenizer files.",
        )
    added = backend.get_added_tokens_decoder()
    tokens, types = [], []
    for index in range(n_vocab):
        if index not in by_id:
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        elif index in added:
            tokens.append(by_id[index])
            types.append(gguf.TokenType.CONTROL if added[index].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[index])
            types.append(gguf.TokenType.NORMAL)
    plain = tokenizer.encode("a", add_special_tokens=False)
    full = tokenizer.encode("a", add_special_tokens=True)
    add_bos = len(full) > len(plain) and full[0] == tokenizer.bos_token_id
    add_eos = len(full) > len(plain) and full[-1] == tokenizer.eos_token_id
    if kind == "llama":
        return _sentencepiece_vocab(tokenizer, tokens, types, add_bos, add_eos)
    pre = detect_pre_tokenizer(backend, fallback_pre, events)
    return Vocab(tokens, [int(t) for t in types], pre, add_bos, add_eos)


def _sentencepiece_vocab(tokenizer: Any, tokens: list[str], types: list[int], add_bos: bool, add_eos: bool) -> Vocab:
    """Types, scores and space prefix for llama.cpp's SentencePiece tokenizer.

    llama.cpp merges the adjacent pair whose joined text is the highest-scoring
    token (leftmost on ties); Hugging Face BPE merges the pair of lowest merge
    rank. A token's score is therefore minus the rank of the merge that creates
    it; tokens no merge creates (characters, bytes, specials) score 0 and the
    unused padding scores below every merge.
    """
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    merges = [pair.split(" ", 1) if isinstance(pair, str) else pair for pair in model.get("merges", [])]
    rank_of: dict[str, int] = {}
    for rank, (left, right) in enumerate(merges):
        rank_of.setdefault(left + right, rank)
    unused_score = -float(len(merges) + 1)
    bytes_ = set(BYTE_TOKENS)
    scores = []
    for index, token in enumerate(tokens):
        if types[index] == gguf.TokenType.UNUSED:
            scores.append(unused_score)
            continue
        scores.append(-float(rank_of.get(token, 0)) if types[index] == gguf.TokenType.NORMAL else 0.0)
        if index == tokenizer.unk_token_id:
            types[index] = gguf.TokenType.UNKNOWN
        elif token in bytes_ and types[index] == gguf.TokenType.NORMAL:
            types[index] = gguf.TokenType.BYTE
    first_piece = tokenizer.convert_ids_to_tokens(tokenizer.encode("a", add_special_tokens=False))[:1]
    add_space_prefix = bool(first_piece) and first_piece[0].startswith(SPACE_MARK)
    # llama.cpp ignores tokenizer.ggml.pre for SentencePiece vocabularies; "default" only names it in logs.
    return Vocab(tokens, [int(t) for t in types], "default", add_bos, add_eos, model="llama", scores=scores,
                 add_space_prefix=add_space_prefix)


def add_vocab(writer: gguf.GGUFWriter, model_dir: Path, vocab: Vocab) -> gguf.SpecialVocab:
    writer.add_tokenizer_model(vocab.model)
    if vocab.model == "llama":
        writer.add_add_space_prefix(vocab.add_space_prefix)
    else:
        writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    if vocab.scores is not None:
        writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.token_types)
    special = gguf.SpecialVocab(model_dir, load_merges=vocab.model == "gpt2", n_vocab=len(vocab.tokens))
    special.add_special_token["bos"] = vocab.add_bos
    special.add_special_token["eos"] = vocab.add_eos
    if special.chat_template is None:
        template = chat_template_of(model_dir)
        if template:
            special.chat_template = template
    special.add_to_gguf(writer, quiet=True)
    return special


def chat_template_of(model_dir: Path) -> str | None:
    """The Jinja chat template saved with the tokenizer (``chat_template.jinja`` or tokenizer_config)."""
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    config = model_dir / "tokenizer_config.json"
    if config.is_file():
        template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
        return template if isinstance(template, str) else None
    return None
