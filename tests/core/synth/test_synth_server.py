"""Synthesis through a real llama_cpp.server on 127.0.0.1 with a tiny GGUF, four requests in flight."""
from __future__ import annotations

import pytest
from llama_server import llama_server
from project_helpers import ingest
from synth_helpers import per_chunk_items, sample_docs, use_endpoint

from doctune.core.events import CancelToken, Events
from doctune.core.items import load_training_items
from doctune.core.synth import SynthParams, run


@pytest.mark.slow
def test_api_teacher_on_llama_cpp_server_with_concurrency_4(project, tiny_gguf):
    ingest(project, sample_docs(2))
    synth = project.config.synth
    per_chunk_items(synth, {"qa": 1.0}, 2)
    synth.max_question_chars = synth.max_answer_chars = 20
    synth.grounding = "off"  # the tiny model writes noise; this test is about transport and structure
    project.save()
    with llama_server(tiny_gguf("qwen2")) as base_url:
        use_endpoint(project, base_url, structured_output="auto", concurrency=4, timeout_s=120.0, max_retries=2)
        result = run(SynthParams(project_dir=project.root), events=Events(), cancel=CancelToken())
    assert result.planned == 4 and result.failed == 0
    assert result.generated + result.filtered == 4 and result.generated >= 3, result
    items = load_training_items(project)
    assert len(items) == result.generated and all(item.teacher.startswith("openai:") for item in items)
