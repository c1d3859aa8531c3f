"""The batched local teacher: the same items as one request at a time, its limits, and synthesis using it."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from doctune.core.config import ConfigError, parse_config
from doctune.core.synth.schemas import check
from doctune.core.teachers import TeacherCallError, open_teacher
from doctune.core.teachers.local import LocalModel, LocalTeacher

SCHEMA = {"type": "object", "properties": {
    "question": {"type": "string", "minLength": 5, "maxLength": 40},
    "options": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 12}, "minItems": 4, "maxItems": 4},
    "answer": {"type": "string", "enum": ["A", "B", "C", "D"]}}, "required": ["question", "options", "answer"]}
PASSAGES = ["The ferry to Inchmara leaves at dawn and returns at dusk, carrying mail and sheep. " * 3,
            "The Quintrel Foundry cast its first bell in 1871; the town grew around the works. " * 3,
            "Marrow Lake freezes from the north shore in December, and the ice road opens in January. " * 2]


def request(i: int, **extra) -> dict:
    """Requests of three chunks (a shared passage prefix), with and without a schema, of several lengths."""
    messages = [{"role": "system", "content": "Reply with JSON."},
                {"role": "user", "content": f"Passage: {PASSAGES[i % 3]}\nWrite question {i} about it."}]
    return {"messages": messages, "schema": SCHEMA if i % 4 else None, "max_tokens": 40 + 9 * i,
            "temperature": 0.0, "seed": i, **extra}


def same(reply) -> tuple:
    return reply.text, reply.data, reply.prompt_tokens, reply.completion_tokens, reply.meta


def test_batched_teacher_returns_the_items_of_the_one_at_a_time_teacher(tiny_gguf):
    """At temperature 0, 4 sequences generated together (requests joining as others finish, prompt prefixes
    shared) give exactly the replies of the one-at-a-time path (``create_completion``)."""
    gguf = Path(tiny_gguf("qwen2"))
    requests = [request(i) for i in range(10)]
    settings = {"n_ctx": 512, "n_gpu_layers": 0, "temperature": 0.7, "max_tokens": 256, "n_threads": 1}
    one, batched = LocalModel(gguf, **settings), LocalModel(gguf, **settings, batch_slots=4)
    try:
        expected = [one.complete(**req) for req in requests]
        got = batched.complete_many(requests)
    finally:
        one.close()
        batched.close()
    assert [same(reply) for reply in got] == [same(reply) for reply in expected]
    assert any(reply.data is not None for reply in got) and any(reply.meta["hit_token_limit"] for reply in got)


def test_requests_from_threads_are_gathered_into_batches(tiny_gguf):
    """``LocalTeacher`` with ``parallel`` > 1 takes the requests of the pipeline's threads together; each thread
    gets the reply to its own request."""
    requests = [request(i, max_tokens=30) for i in range(8)]
    with LocalTeacher(tiny_gguf("qwen2"), n_ctx=512, n_threads=1, parallel=4) as teacher:
        assert teacher.concurrency == 4
        with ThreadPoolExecutor(max_workers=4) as pool:
            got = list(pool.map(lambda req: teacher.complete(**req), requests))
    with LocalTeacher(tiny_gguf("qwen2"), n_ctx=512, n_threads=1) as one:
        assert one.concurrency == 1
        prompts = [one.complete(**{**req, "max_tokens": 1}).prompt_tokens for req in requests]
    assert [reply.prompt_tokens for reply in got] == prompts  # each reply answers its own request
    assert all(0 < reply.completion_tokens <= 30 for reply in got)


def test_shared_prompt_prefixes_are_evaluated_once(tiny_gguf):
    model = LocalModel(Path(tiny_gguf("qwen2")), n_ctx=512, n_gpu_layers=0, temperature=0.0, max_tokens=64,
                       n_threads=1, batch_slots=4)
    try:
        requests = [request(0, max_tokens=8, schema=None), request(3, max_tokens=8, schema=None),
                    request(6, max_tokens=8, schema=None), request(9, max_tokens=8, schema=None)]
        replies = model.complete_many(requests)
        evaluated = model._engine.evaluated
        prompts = sum(reply.prompt_tokens for reply in replies)
        generated = sum(reply.completion_tokens for reply in replies)
        # all four share the passage: its prompt is evaluated once, each other one only from where it differs
        assert evaluated < prompts / 2 + generated, (evaluated, prompts, generated)
        single = LocalModel(Path(tiny_gguf("qwen2")), n_ctx=512, n_gpu_layers=0, temperature=0.0, max_tokens=64,
                            n_threads=1)
        try:
            assert [same(r) for r in replies] == [same(single.complete(**req)) for req in requests]
        finally:
            single.close()
    finally:
        model.close()


def test_batched_replies_keep_the_schema_and_the_hard_token_limit(tiny_gguf):
    with LocalTeacher(tiny_gguf("qwen2"), n_ctx=512, n_threads=1, parallel=3) as teacher:
        with ThreadPoolExecutor(max_workers=3) as pool:
            valid = list(pool.map(lambda seed: teacher.complete(request(1)["messages"], schema=SCHEMA, max_tokens=200,
                                                                 seed=seed), range(3)))
            cut = list(pool.map(lambda n: teacher.complete(request(2)["messages"], schema=SCHEMA, max_tokens=n,
                                                               seed=1), (3, 5, 7)))
    for reply in valid:  # sampled at the teacher's temperature
        assert reply.data is not None and check(SCHEMA, reply.data) == [], reply.text
        assert 0 < reply.completion_tokens <= 200
    for reply, limit in zip(cut, (3, 5, 7)):
        assert reply.completion_tokens <= limit and reply.data is None and reply.meta["hit_token_limit"]


def test_a_prompt_too_long_fails_alone(tiny_gguf):
    with LocalTeacher(tiny_gguf("qwen2"), n_ctx=256, n_threads=1, parallel=2) as teacher:
        long = [{"role": "user", "content": "ferry " * 400}]
        results: dict[str, object] = {}

        def ask(name, messages):
            try:
                results[name] = teacher.complete(messages, max_tokens=8, seed=0)
            except TeacherCallError as exc:
                results[name] = exc

        threads = [threading.Thread(target=ask, args=("long", long)),
                   threading.Thread(target=ask, args=("short", request(0)["messages"]))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert isinstance(results["long"], TeacherCallError) and "context window" in str(results["long"])
    assert results["short"].completion_tokens > 0


def test_parallel_setting_is_validated_and_reaches_the_teacher(project, tiny_gguf):
    for bad in (0, -1, 65, "many"):
        with pytest.raises(ConfigError, match="parallel"):
            parse_config({"teacher": {"parallel": bad}})
    assert parse_config({}).teacher.parallel >= 1
    project.config.teacher.model_path = str(tiny_gguf("qwen2"))
    project.config.teacher.n_ctx, project.config.teacher.parallel = 256, 3
    with open_teacher(project, n_threads=1) as teacher:
        assert teacher.concurrency == 3
        assert teacher.complete(request(1)["messages"], schema=SCHEMA, max_tokens=120, seed=0).data is not None
