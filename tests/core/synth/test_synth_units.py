"""Planning, filters, leakage, token budget and cancel of the synthesis pipeline."""
from __future__ import annotations

import pytest
from project_helpers import ingest
from synth_helpers import per_chunk_items, sample_docs, use_endpoint

from doctune.core.config import SynthSettings
from doctune.core.events import Cancelled, CancelToken, Events, RecordingSink
from doctune.core.fsio import read_jsonl
from doctune.core.items import failures_path, load_training_items, questions_path
from doctune.core.synth import SynthParams, run
from doctune.core.synth.filters import DuplicateIndex, LeakageIndex, grounding_share, key_terms
from doctune.core.synth.recipes import entity_combinations, plan_tasks, window_sources


def chunk(doc: str, ordinal: int, tokens: int = 100) -> dict:
    return {"id": f"{doc}-{ordinal:05d}", "doc_id": doc, "doc_title": doc, "ordinal": ordinal,
            "text": f"text {doc} {ordinal}", "heading_path": "", "n_tokens": tokens}


def test_plan_is_stable_weighted_and_windowed():
    chunks = [chunk("d1", 0), chunk("d1", 1), chunk("d1", 2), chunk("d2", 0)]
    settings = SynthSettings(per_chunk=2, amplification=0.0, entigraph_window_tokens=250)
    tasks = plan_tasks(chunks, {"qa": 1.0, "rephrase": 0.5, "entigraph": 1.0, "focal": 0.0}, settings)
    by_recipe = {name: [t for t in tasks if t.recipe == name] for name in ("qa", "rephrase", "entigraph", "focal")}
    assert len(by_recipe["qa"]) == 8 and len(by_recipe["rephrase"]) == 4 and not by_recipe["focal"]
    windows = window_sources(chunks, 250)
    assert [w.chunk_ids for w in windows] == [("d1-00000", "d1-00001"), ("d1-00002",), ("d2-00000",)]
    assert len(by_recipe["entigraph"]) == 4 + 2 + 2
    again = plan_tasks(chunks, {"qa": 1.0, "rephrase": 0.5, "entigraph": 1.0, "focal": 0.0}, settings)
    assert [t.id for t in tasks] == [t.id for t in again] and len({t.id for t in tasks}) == len(tasks)
    other_seed = plan_tasks(chunks, {"qa": 1.0}, SynthSettings(per_chunk=2, amplification=0.0, seed=1))
    assert not {t.id for t in other_seed} & {t.id for t in by_recipe["qa"]}


def test_entity_combinations_are_reproducible_pairs_then_triples():
    names = ["Hennick", "Draskey", "Corveth", "Ossenby", "Hennick"]
    combos = entity_combinations(names, "w1", 0, triples=True)
    assert combos == entity_combinations(names, "w1", 0, triples=True)
    assert combos != entity_combinations(names, "w1", 1, triples=True)
    assert [len(c) for c in combos] == [2] * 6 + [3] * 4
    assert len(entity_combinations(names, "w1", 0, triples=False)) == 6


def test_duplicates_and_near_duplicates():
    index = DuplicateIndex(0.7)
    text = "The Grey Tern ferry links Draskey to the mainland port of Ossenby twice a week in summer."
    assert index.check_and_add("c1", text) is None
    assert index.check_and_add("c2", text.upper() + "  ") == "duplicate"
    assert index.check_and_add("c1", text.replace("summer.", "summer months.")) == "near-duplicate"
    assert index.check_and_add("c1", "Seaweed paper is pressed from dried kelp on Hennick.") is None


def test_grounding_share_and_key_terms():
    source = "The paper mills on Hennick ship around 30 tonnes of seaweed paper each year."
    assert grounding_share("About 30 tonnes of seaweed paper.", source) == 1.0
    assert grounding_share("Roughly 90 barrels of whale oil.", source) == 0.0
    assert grounding_share("Yes.", source) == 1.0
    assert key_terms("The mills ship 30 tonnes") == {"mills", "ship", "30", "tonnes"}


def test_questions_pointing_at_the_passage_are_not_self_contained():
    from doctune.core.synth.filters import refers_to_unseen_text

    assert refers_to_unseen_text("What does the passage say about the ferry?")
    assert refers_to_unseen_text("According to this document, who charted the islands?")
    assert not refers_to_unseen_text("Who first charted the Vellmora Archipelago?")


def test_leakage_index():
    index = LeakageIndex(["Who first charted the Vellmora Archipelago?"], 0.6)
    assert index.leaks("who first charted the vellmora archipelago")
    assert index.leaks("Who charted the Vellmora Archipelago first, and when?") is True
    assert not index.leaks("What is seaweed paper made from?")


@pytest.fixture
def qa_project(project, fault_server):
    ingest(project, sample_docs(3))
    server = fault_server()
    use_endpoint(project, server.base_url, concurrency=1)
    per_chunk_items(project.config.synth, {"qa": 1.0}, 2)
    project.save()
    project.server = server
    return project


def test_eval_questions_too_close_to_training_are_dropped_and_vice_versa(qa_project):
    run(SynthParams(project_dir=qa_project.root), events=Events(), cancel=CancelToken())
    qa_project.config.synth.leakage_threshold = 0.01  # everything about the same passages counts as leaked
    qa_project.save()
    sink = RecordingSink()
    evaluation = run(SynthParams(project_dir=qa_project.root, eval=True), events=Events(sink), cancel=CancelToken())
    assert evaluation.planned == 6 and evaluation.filtered_by_reason == {"leakage": 6}
    assert any("Leakage check: 6 item(s)" in w["message"] for w in sink.of("warning"))
    assert not questions_path(qa_project).exists()
    reasons = {r["detail"] for r in read_jsonl(qa_project.eval_dir / "failures.jsonl")}
    assert reasons == {"leakage: too close to a training question"}


def test_token_budget_defers_the_rest(qa_project):
    qa_project.config.synth.token_budget = 1
    qa_project.save()
    result = run(SynthParams(project_dir=qa_project.root), events=Events(), cancel=CancelToken())
    assert result.generated == 2 and result.deferred == 4  # one in flight plus one queued per worker
    qa_project.config.synth.token_budget = 0
    qa_project.save()
    rest = run(SynthParams(project_dir=qa_project.root), events=Events(), cancel=CancelToken())
    assert (rest.already_done, rest.generated) == (2, 4)


def test_cancel_keeps_finished_items_and_resumes(qa_project):
    cancel = CancelToken()
    seen = []

    def sink(event):
        if event["event"] == "progress":
            seen.append(event)
            cancel.cancel()

    with pytest.raises(Cancelled):
        run(SynthParams(project_dir=qa_project.root), events=Events(sink), cancel=cancel)
    kept = load_training_items(qa_project)
    assert 1 <= len(kept) < 6
    rest = run(SynthParams(project_dir=qa_project.root), events=Events(), cancel=CancelToken())
    assert rest.already_done == len(kept) and rest.generated == 6 - len(kept)
    assert not failures_path(qa_project).exists()


def test_bad_recipe_and_empty_project_are_reported(project):
    from pydantic import ValidationError

    from doctune.core.synth import SynthInputError

    with pytest.raises(ValidationError, match="unknown recipe"):
        SynthParams(project_dir=project.root, recipes=["qa", "poetry"])
    with pytest.raises(SynthInputError, match="no document chunks"):
        run(SynthParams(project_dir=project.root), events=Events(), cancel=CancelToken())


def test_judge_grounding_drops_what_the_teacher_finds_unsupported(project, fault_server):
    ingest(project, sample_docs(2))

    def judge_says_no_for_vellmora(body, attempt):
        system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
        if "supported by a passage" in system and "Vellmora" in user:
            return ("text", '{"supported": false, "reason": "not in the passage"}')
        return None

    server = fault_server(fault=judge_says_no_for_vellmora)
    use_endpoint(project, server.base_url)
    per_chunk_items(project.config.synth, {"qa": 1.0}, 1)
    project.config.synth.grounding = "judge"
    project.save()
    result = run(SynthParams(project_dir=project.root), events=Events(), cancel=CancelToken())
    assert (result.generated, result.filtered_by_reason) == (1, {"not grounded": 1})
    assert len(server.requests) == 4  # one question and one verdict per chunk


def test_every_recipe_records_what_made_it(project, fault_server):
    ingest(project, sample_docs(2))
    server = fault_server()
    use_endpoint(project, server.base_url)
    synth = project.config.synth
    per_chunk_items(synth, {"qa": 1.0, "focal": 1.0, "rephrase": 1.0, "entigraph": 1.0}, 1)
    synth.min_document_chars = 20
    project.save()
    result = run(SynthParams(project_dir=project.root), events=Events(), cancel=CancelToken())
    assert result.generated == result.planned == 8, result
    items = {item.recipe: item for item in load_training_items(project)}
    assert items["qa"].messages[0].role == "user" and items["qa"].messages[-1].role == "assistant"
    assert items["focal"].meta["question"] and items["focal"].meta["calls"] == 2
    assert items["rephrase"].meta["style"]
    assert len(items["entigraph"].meta["entities"]) in (2, 3) and items["entigraph"].meta["chunk_ids"]
    assert all(item.prompt_hash and item.teacher == "openai:test@127.0.0.1" for item in items.values())
    entity_calls = [b for b in server.requests if "salient entities" in b["messages"][0]["content"]]
    assert len(entity_calls) == 2  # once per window: each short document is one window
    assert len(server.requests) == 2 + 2 * 2 + 2 + 2 + 2  # qa, focal (two calls), rephrase, entigraph, entities


def test_unknown_recipe_on_the_command_line_is_a_usage_error(project):
    from doctune.core.cli import main

    assert main(["synth", "-p", str(project.root), "--recipes", "qa,poetry"]) == 1


def test_the_estimate_uses_the_clock_rate_the_last_generation_measured(project, fault_server):
    """The estimate and the live ETA come from one rate: the wall-clock time per teacher call of the last run
    (its calls overlap), not the calls' own times added up (which counted each of the 4 in flight in full)."""
    from doctune.core.synth.step import describe_estimate, estimate, load_speed, plan

    ingest(project, sample_docs(2))
    use_endpoint(project, fault_server(delay_s=0.2).base_url, concurrency=4)
    per_chunk_items(project.config.synth, {"qa": 1.0}, 2)
    project.save()
    nothing = estimate(project, plan(project, SynthParams(project_dir=project.root)))
    assert nothing["seconds"] is None and nothing["speed_source"] is None
    assert "press Test on the Teacher page" in describe_estimate(nothing, window=True)
    assert "doctune teacher test" in describe_estimate(nothing) and "Teacher page" not in describe_estimate(nothing)

    result = run(SynthParams(project_dir=project.root), events=Events(), cancel=CancelToken())
    speed = load_speed(project)
    assert speed.source == "generate" and speed.calls == result.generated
    assert speed.seconds_per_call > 2 * speed.wall_seconds_per_call  # 4 calls in flight at once
    again = estimate(project, plan(project, SynthParams(project_dir=project.root)))
    assert again["speed_source"] == "generate"
    assert again["seconds"] == pytest.approx(result.seconds, abs=0.2)  # the whole plan again: the run's own time
    assert "measured while generating" in describe_estimate(again, window=True)
