"""Replay answers: generated once per student and cached; a cancel stops generation within a token, caching nothing."""
from __future__ import annotations

import threading
import time

import pytest

from doctune.core.events import Cancelled, CancelToken, Events
from doctune.core.train.replay import cache_file, replay_items


@pytest.fixture
def tiny_student(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_model("qwen2")
    return folder, AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def test_answers_are_cached_once_per_student(tiny_student, tmp_path):
    folder, model, tokenizer = tiny_student
    first = replay_items(model, tokenizer, student_folder=folder, cache_dir=tmp_path, prompts=3, max_new_tokens=8,
                         events=Events(), cancel=CancelToken())
    started = time.perf_counter()
    again = replay_items(model, tokenizer, student_folder=folder, cache_dir=tmp_path, prompts=3, max_new_tokens=8,
                         events=Events(), cancel=CancelToken())
    assert [item.messages for item in again] == [item.messages for item in first] and len(first) <= 3
    assert time.perf_counter() - started < 1.0


def test_a_cancel_stops_generation_at_the_next_token_and_caches_nothing(tiny_student, tmp_path):
    folder, model, tokenizer = tiny_student
    cancel = CancelToken()
    threading.Timer(1.0, cancel.cancel).start()
    started = time.perf_counter()
    with pytest.raises(Cancelled):
        replay_items(model, tokenizer, student_folder=folder, cache_dir=tmp_path, prompts=8, max_new_tokens=100_000,
                     events=Events(), cancel=cancel)
    assert time.perf_counter() - started < 10  # 8 × 100k tokens would take hours
    path = cache_file(tmp_path, folder, 100_000)
    assert not path.exists() or path.read_text() == ""


def test_only_as_many_answers_as_the_mix_needs_are_generated_and_a_bigger_mix_reuses_them(tiny_student, tmp_path):
    from doctune.core.fsio import read_jsonl
    from doctune.core.train.data import tokenize_qa

    folder, model, tokenizer = tiny_student
    kwargs = dict(student_folder=folder, cache_dir=tmp_path, prompts=40, max_new_tokens=8, events=Events(),
                  cancel=CancelToken())
    small = replay_items(model, tokenizer, tokens_wanted=60, **kwargs)
    generated = list(read_jsonl(cache_file(tmp_path, folder, 8)))
    assert len(generated) == 8  # one batch, not the 40 prompts allowed
    tokens = [tokenize_qa(tokenizer, item, "replay").n_tokens for item in small]
    assert sum(tokens) >= 60 and sum(tokens[:-1]) < 60  # the shortest prefix that covers the share
    bigger = replay_items(model, tokenizer, tokens_wanted=400, **kwargs)
    assert [item.id for item in bigger[:len(small)]] == [item.id for item in small]
    assert sum(tokenize_qa(tokenizer, item, "replay").n_tokens for item in bigger) >= 400
    records = list(read_jsonl(cache_file(tmp_path, folder, 8)))
    assert records[:8] == generated and len({r["id"] for r in records}) == len(records) < 40
