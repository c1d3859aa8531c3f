"""Streaming stays steady and exact: invalid UTF-8, stop text across pieces, the token limit, cancel.

The invalid-UTF-8 models are the tiny qwen2 with its output layer replaced so
that it only ever picks single-byte tokens of bytes 0x80 and above: a stream
of lone continuation bytes, unfinished lead bytes and bytes UTF-8 never uses.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from doctune.core.chat.backend import LlamaBackend
from doctune.core.chat.pieces import PieceDecoder
from doctune.core.chat.system import ChatSystem
from doctune.core.events import Cancelled, CancelToken

STOP = "<|im_end|>"
REPLACEMENT = "\ufffd"
BYTE_KINDS = {"continuation": range(0x80, 0xC0), "high": range(0x80, 0x100)}


# ----- the decoder alone ---------------------------------------------------------------------------
def _decode_all(chunks: list[bytes], stop: str = STOP) -> tuple[list[str], str]:
    decoder = PieceDecoder(stop)
    pieces = [decoder.feed(chunk) for chunk in chunks]
    return pieces, "".join(pieces) + decoder.finish()


def test_invalid_bytes_become_replacements_at_once_and_split_characters_wait_for_their_end():
    pieces, text = _decode_all([b"caf", b"\xc3", b"\xa9", b"\x80", b"\xe2\x82", b"\xac", b"\xf0"])
    assert pieces == ["caf", "", "é", REPLACEMENT, "", "€", ""]
    assert text == "café" + REPLACEMENT + "€" + REPLACEMENT
    pieces, _ = _decode_all([b"\xe2", b"\xe2", b"A"])
    assert pieces == ["", REPLACEMENT, REPLACEMENT + "A"]


def test_stop_text_split_over_pieces_is_never_shown():
    pieces, text = _decode_all([b"Hello <|", b"im", b"_e", b"nd|> and more", b" after"])
    assert pieces == ["Hello ", "", "", "", ""] and text == "Hello "
    pieces, text = _decode_all([b"a <", b"b", b" <|im", b"_start"])
    assert pieces == ["a ", "<b", " ", "<|im_start"] and text == "a <b <|im_start"
    assert _decode_all([b"no stop <|im_e"])[1] == "no stop <|im_e", "a partial stop at the end is text"


@given(data=st.binary(max_size=64), cuts=st.lists(st.integers(0, 64), max_size=12), stop=st.sampled_from([STOP, "", "é!"]))
def test_pieces_join_to_the_whole_decode_cut_at_the_stop_text(data, cuts, stop):
    bounds = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    chunks = [data[start:end] for start, end in zip(bounds, bounds[1:])]
    whole = data.decode("utf-8", errors="replace")
    expected = whole[: whole.find(stop)] if stop and stop in whole else whole
    pieces, text = _decode_all(chunks, stop)
    assert text == expected
    emitted = ""
    for end, piece in zip(bounds[1:], pieces):
        emitted += piece
        so_far = data[:end].decode("utf-8", errors="replace")
        assert expected.startswith(emitted), "nothing after the stop text, nothing taken back"
        held = min(len(so_far), len(expected)) - len(emitted)
        assert held <= max(len(stop) - 1, 0) + 1, "held back: a possible stop-text start and one unfinished character"


# ----- a real model that emits invalid UTF-8 ------------------------------------------------------------
@pytest.fixture(scope="module")
def byte_gguf(tiny_model, chat_gguf, tmp_path_factory):
    """``byte_gguf("continuation"|"high")`` → GGUF of the tiny qwen2 that only emits single bytes of that kind."""
    from doctune.core.export.gguf import write_gguf

    probe = LlamaBackend(chat_gguf, n_ctx=64)
    byte_of = {token: probe.llm.detokenize([token]) for token in range(probe.llm.n_vocab())}
    probe.close()
    built: dict[str, Path] = {}

    def build(kind: str) -> Path:
        if kind not in built:
            targets = [token for token, piece in byte_of.items() if len(piece) == 1 and piece[0] in BYTE_KINDS[kind]]
            folder = tmp_path_factory.mktemp(f"bytes-{kind}")
            _write_byte_model(tiny_model("qwen2"), folder / "hf", targets)
            built[kind] = write_gguf(folder / "hf", folder / f"{kind}.gguf")
        return built[kind]

    return build


def _write_byte_model(source: Path, out: Path, targets: list[int]) -> None:
    """A copy of ``source`` whose untied output layer scores only ``targets``.

    Target rows come in opposite pairs (v, -v) of random vectors, so for any
    hidden state some target scores far above every other token (all 0).
    """
    from safetensors.numpy import load_file, save_file

    shutil.copytree(source, out)
    weights = load_file(str(out / "model.safetensors"))
    vocab, hidden = weights["model.embed_tokens.weight"].shape
    rows = np.random.default_rng(0).normal(size=((len(targets) + 1) // 2, hidden)).astype(np.float32)
    head = np.zeros((vocab, hidden), dtype=np.float32)
    head[targets] = np.concatenate([rows, -rows])[: len(targets)]
    weights["lm_head.weight"] = head
    save_file(weights, str(out / "model.safetensors"))
    config = json.loads((out / "config.json").read_text())
    config["tie_word_embeddings"] = False
    (out / "config.json").write_text(json.dumps(config))


def _timed_stream(backend: LlamaBackend, max_tokens: int, **kwargs) -> list[tuple[str, int, float]]:
    prompt = backend.tokenize_prompt([{"role": "user", "content": "Where is the lighthouse?"}])
    started = time.perf_counter()
    return [(piece, generated, time.perf_counter() - started)
            for piece, generated in backend.stream(prompt, max_tokens=max_tokens, **kwargs)]


def test_lone_continuation_bytes_stream_one_replacement_per_token(byte_gguf):
    """Before: 512 such tokens gave no piece for 36 s (held back, re-decoded per token), then an empty answer."""
    backend = LlamaBackend(byte_gguf("continuation"), n_ctx=1024)
    arrivals = _timed_stream(backend, 512)
    backend.close()
    assert [generated for _, generated, _ in arrivals] == list(range(1, 513))
    assert "".join(piece for piece, _, _ in arrivals) == REPLACEMENT * 512
    times = [at for _, _, at in arrivals]  # the first piece comes with the first token (asserted above)
    gaps = np.diff(times)
    assert times[-1] < 30, f"512 tokens took {times[-1]:.1f} s"
    assert gaps.max() < max(1.0, 50 * np.median(gaps)), f"a {gaps.max():.2f} s gap without a piece"


def test_random_high_bytes_with_sampling_stream_steadily_and_keep_the_token_limit(byte_gguf):
    backend = LlamaBackend(byte_gguf("high"), n_ctx=1024)
    arrivals = _timed_stream(backend, 400, temperature=0.8)
    counts = [0] + [generated for _, generated, _ in arrivals]
    assert max(np.diff(counts)) <= 4, "a character waits at most for its 4 bytes"
    system = ChatSystem("high bytes", backend, max_answer_tokens=400, temperature=0.8)
    answer = system.answer("Where is the lighthouse?")
    assert answer.completion_tokens == 400
    assert answer.text.count(REPLACEMENT) > 100 and all(ord(char) >= 0x80 for char in answer.text)
    assert 0 < answer.ttft_s <= answer.total_s < 30
    system.close()


def test_cancel_stops_within_one_token(byte_gguf):
    backend = LlamaBackend(byte_gguf("continuation"), n_ctx=1024)
    prompt = backend.tokenize_prompt([{"role": "user", "content": "Where is the lighthouse?"}])
    cancel = CancelToken()
    seen = 0
    with pytest.raises(Cancelled):
        for _piece, seen in backend.stream(prompt, max_tokens=500, cancel=cancel):
            if seen == 5:
                cancel.cancel()
    assert seen == 5 and backend.llm.n_tokens - len(prompt) <= 6
    backend.close()


# ----- answers unchanged on valid text ------------------------------------------------------------
@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_answers_match_llama_cpp_completion(tiny_gguf, family):
    """Same text as ``create_completion`` (greedy and sampled, same seeds); invalid bytes there vanish, here U+FFFD."""
    path = tiny_gguf(family, "f16")
    ours, reference = LlamaBackend(path, n_ctx=512), LlamaBackend(path, n_ctx=512)
    exact = 0
    for temperature in (0.0, 0.8):
        for question in ("When was the lighthouse first lit?", "Who built the Brass Hen?", "Hello"):
            prompt = ours.tokenize_prompt([{"role": "user", "content": question}])
            text = "".join(piece for piece, _ in ours.stream(prompt, max_tokens=40, temperature=temperature))
            reply = reference.llm.create_completion(
                prompt=prompt, max_tokens=40, temperature=temperature, top_k=1 if temperature == 0 else 40,
                stop=[reference.eos_text],
            )
            expected = reply["choices"][0]["text"]
            if reply["usage"]["completion_tokens"] > 40:  # its limit skipped while a character was unfinished
                assert expected.startswith(text.replace(REPLACEMENT, ""))
            else:
                assert text.replace(REPLACEMENT, "") == expected
            exact += text == expected
    assert exact >= 3
    ours.close()
    reference.close()
