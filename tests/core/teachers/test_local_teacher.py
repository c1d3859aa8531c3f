"""The local GGUF teacher on a tiny random model: schema-valid JSON and a hard token limit."""
from __future__ import annotations

import pytest

from doctune.core.synth.schemas import check
from doctune.core.teachers import TeacherError, open_teacher
from doctune.core.teachers.local import LocalTeacher

SCHEMA = {"type": "object", "properties": {
    "question": {"type": "string", "minLength": 5, "maxLength": 40},
    "options": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 12}, "minItems": 4, "maxItems": 4},
    "answer": {"type": "string", "enum": ["A", "B", "C", "D"]}}, "required": ["question", "options", "answer"]}
MESSAGES = [{"role": "system", "content": "Reply with JSON."}, {"role": "user", "content": "A question about ferries."}]


@pytest.fixture(scope="module")
def teacher(tiny_gguf):
    with LocalTeacher(tiny_gguf("qwen2"), n_ctx=512, n_threads=2) as teacher:
        yield teacher


def test_untrained_model_returns_schema_valid_objects(teacher):
    for seed in range(3):
        reply = teacher.complete(MESSAGES, schema=SCHEMA, max_tokens=200, seed=seed)
        assert reply.data is not None, reply.text
        assert check(SCHEMA, reply.data) == []
        assert reply.prompt_tokens > 0 and 0 < reply.completion_tokens <= 200


def test_hard_token_limit_holds(teacher):
    reply = teacher.complete(MESSAGES, max_tokens=7, seed=1)
    assert reply.completion_tokens <= 7
    cut = teacher.complete(MESSAGES, schema=SCHEMA, max_tokens=5, seed=1)
    assert cut.completion_tokens <= 5 and cut.data is None and cut.meta["hit_token_limit"]


def test_open_teacher_reports_a_missing_model(project):
    project.config.teacher.model_path = str(project.root / "missing.gguf")
    with pytest.raises(TeacherError, match="does not exist"):
        open_teacher(project)
    project.config.teacher.model_path = ""
    with pytest.raises(TeacherError, match="No local teacher"):
        open_teacher(project)


def test_teacher_test_command_reports_speed(project, tiny_gguf):
    import json
    import subprocess
    import sys

    project.config.teacher.model_path = str(tiny_gguf("qwen2"))
    project.config.teacher.n_ctx = 512
    project.save()
    done = subprocess.run([sys.executable, "-m", "doctune.core", "teacher", "test", "-p", str(project.root),
                           "--events", "jsonl"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    event = json.loads(done.stdout.splitlines()[-1])
    assert event["event"] == "done" and event["valid_json"] and event["tokens_per_s"] > 0
    assert (project.cache_dir / "teacher-speed.json").exists()
