"""``doctune run``: the steps in order, each skipping what is done."""
from __future__ import annotations

import pytest

from doctune.core.events import CancelToken, Events, RecordingSink
from doctune.core.pipeline import PipelineParams, PipelineStepMissing, run
from doctune.core.resources import resource_path


def test_until_index_ingests_and_indexes_then_a_rerun_has_nothing_new(project):
    docs = resource_path("sample/docs")
    sink = RecordingSink()
    first = run(PipelineParams(project_dir=project.root, add=[docs], until="index"), events=Events(sink),
                cancel=CancelToken())
    assert [(o.step, o.status) for o in first.outcomes] == [("ingest", "done"), ("index", "done")]
    assert "embedded" in first.outcomes[1].note and not first.outcomes[1].note.startswith("0 ")
    assert any(e["message"].startswith("Step 2/8: index") for e in sink.of("log"))
    reported = [(e["step"], e["status"]) for e in sink.of("log") if "step" in e]  # what a watcher reads per step
    assert reported == [("ingest", "done"), ("index", "done")]
    again = run(PipelineParams(project_dir=project.root, until="index"), events=Events(), cancel=CancelToken())
    assert again.outcomes[0].status == "done" and again.outcomes[1].note.startswith("0 chunk(s) embedded")


def test_export_writes_the_format_chat_and_evaluation_use_too(project):
    from doctune.core.pipeline import export_formats

    project.config.export.formats = ["f16", "Q4_K_M"]
    project.config.rag.gguf_format = "q8_0"
    assert export_formats(project) == ["f16", "q4_k_m", "q8_0"]
    project.config.rag.gguf_format = "f16"
    assert export_formats(project) == ["f16", "q4_k_m"]


def test_nothing_to_ingest_is_skipped_with_the_command_to_add_files(project):
    result = run(PipelineParams(project_dir=project.root, until="ingest"), events=Events(), cancel=CancelToken())
    (outcome,) = result.outcomes
    assert outcome.status == "skipped" and "doctune add" in outcome.note


def test_unknown_step_is_refused(project):
    with pytest.raises(PipelineStepMissing, match="Unknown step 'deploy'"):
        run(PipelineParams(project_dir=project.root, until="deploy"), events=Events(), cancel=CancelToken())


def test_cancel_stops_before_the_next_step(project):
    cancel = CancelToken()
    cancel.cancel()
    from doctune.core.events import Cancelled

    with pytest.raises(Cancelled):
        run(PipelineParams(project_dir=project.root), events=Events(), cancel=cancel)
