"""Every recipe end to end with a local tiny GGUF teacher: constrained decoding makes valid items from garbage."""
from __future__ import annotations

import pytest
from project_helpers import ingest
from synth_helpers import per_chunk_items, sample_docs

from doctune.core.events import CancelToken, Events, RecordingSink
from doctune.core.fsio import read_jsonl
from doctune.core.items import items_path, load_eval_questions, load_training_items, questions_path
from doctune.core.synth import SynthParams, run


def small_local_project(project, gguf) -> None:
    teacher, synth = project.config.teacher, project.config.synth
    teacher.kind, teacher.model_path, teacher.n_ctx = "local", str(gguf), 1024
    per_chunk_items(synth, {"qa": 1.0, "focal": 1.0, "rephrase": 1.0, "entigraph": 1.0}, 1)
    synth.max_question_chars = synth.max_answer_chars = 20
    synth.max_document_chars, synth.min_document_chars = 100, 10
    synth.grounding = "off"  # an untrained model's words come from nowhere; this test is about the schema
    synth.entigraph_max_entities, synth.entigraph_triples = 2, False
    project.save()


@pytest.mark.slow
def test_every_recipe_and_the_eval_pass_with_a_tiny_local_teacher(project, tiny_gguf):
    ingest(project, sample_docs(1))
    small_local_project(project, tiny_gguf("qwen2"))
    sink = RecordingSink()

    result = run(SynthParams(project_dir=project.root), events=Events(sink), cancel=CancelToken())

    assert result.planned == 4 and result.generated + result.filtered + result.failed == 4
    assert result.failed == 0 and result.generated == 4, result
    items = load_training_items(project)
    assert {item.recipe for item in items} == {"qa", "focal", "rephrase", "entigraph"}
    assert len(list(read_jsonl(items_path(project)))) == 4
    for item in items:
        assert item.teacher.startswith("local:") and item.prompt_hash and item.meta["completion_tokens"] > 0
        assert item.kind == ("qa" if item.recipe == "qa" else "document")
    assert (project.synth_dir / "entities.jsonl").exists()

    evaluation = run(SynthParams(project_dir=project.root, eval=True), events=Events(sink), cancel=CancelToken())
    assert evaluation.planned == 2 and evaluation.generated + evaluation.filtered == 2
    questions = load_eval_questions(project)
    assert len(questions) == evaluation.generated == len(list(read_jsonl(questions_path(project))))
    for question in questions:
        assert question.source_text and question.chunk_id
        if question.kind == "mc":
            assert len(question.options) == 4 and question.answer in "ABCD"
