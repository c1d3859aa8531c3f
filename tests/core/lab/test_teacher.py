"""The lab teacher through DocTune's real synthesis: every recipe's items written from the documents' facts, none
dropped by the pipeline's filters (grounding and leakage included), the same items on a second run, and held-out
questions in phrasings never used for training."""
from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from project_helpers import ingest

from doctune.core.evaluate.judge import judge_answer
from doctune.core.events import CancelToken, Events
from doctune.core.fsio import read_jsonl
from doctune.core.items import items_path, questions_path
from doctune.core.lab.teacher import EXTRA_HELDOUT, LabTeacher, training_questions
from doctune.core.lab.world import ATTRIBUTES, KIND_ATTRIBUTES, World, make_world, render_document
from doctune.core.pipeline import open_teacher
from doctune.core.project import Project
from doctune.core.synth import SynthParams
from doctune.core.synth import run as synthesize
from doctune.core.synth.filters import normalized
from doctune.core.synth.recipes import TRAIN_RECIPES


def _lab_project(root: Path, *, grounding: str = "terms") -> tuple[Project, World]:
    """Six new lab entities (two of each kind) as Markdown documents, ingested; the lab teacher; every recipe."""
    world = make_world(11, 6)
    docs = root / "docs"
    docs.mkdir(parents=True)
    for entity in world.entities:
        (docs / entity.file_name).write_text(render_document(entity, random.Random(entity.id)), encoding="utf-8")
    project = Project.create(root / "project", name="Lab teacher")
    ingest(project, sorted(docs.glob("*.md")))
    config = project.config
    config.teacher.kind = "lab"
    config.synth.recipes = {name: 1.0 for name in TRAIN_RECIPES}
    config.synth.per_chunk = 3
    config.synth.amplification = 0.0  # per_chunk items, not the default amount
    config.synth.eval_mc_per_chunk = config.synth.eval_open_per_chunk = 2
    config.synth.grounding = grounding
    project.save()
    return project, world


def _synthesize(project: Project, eval: bool):
    return synthesize(SynthParams(project_dir=project.root, eval=eval), events=Events(), cancel=CancelToken(),
                      open_teacher=open_teacher)


def _entity(world: World, record: dict):
    return world.entity_for_text(record.get("title") or record.get("source_text") or "") or \
        world.entity_for_text(" ".join(m["content"] for m in record.get("messages", [])))


def _values_named(text: str, entity) -> set[str]:
    """Every value of the entity's attributes' vocabularies that ``text`` names (right or wrong)."""
    return {value for attribute in KIND_ATTRIBUTES[entity.kind] for value in ATTRIBUTES[attribute].values
            if re.search(rf"(?<!\w){re.escape(value)}(?!\w)", text)}


def test_every_recipe_yields_items_true_to_the_documents_and_none_is_filtered(tmp_path):
    project, world = _lab_project(tmp_path / "one")
    train = _synthesize(project, eval=False)
    held_out = _synthesize(project, eval=True)  # checked for leakage against the training questions just written

    assert (train.failed, train.filtered, held_out.failed, held_out.filtered) == (0, 0, 0, 0), \
        (train.filtered_by_reason, train.failed_by_reason, held_out.filtered_by_reason)
    items = list(read_jsonl(items_path(project)))
    assert {item["recipe"] for item in items} == set(TRAIN_RECIPES)
    assert len(items) == train.generated == train.planned
    for item in items:
        entity = _entity(world, item)
        if item["kind"] == "qa":
            question, answer = item["messages"][0]["content"], item["messages"][1]["content"]
            fact = next(f for f in entity.facts if question in training_questions(entity, f.attribute))
            assert answer.startswith(fact.value)  # the bare value first: the option text MC scoring reads
        else:
            assert _values_named(item["text"], entity) <= {f.value for f in entity.facts}, item["text"]
            assert entity.name in item["text"] and len(_values_named(item["text"], entity)) >= 1

    questions = list(read_jsonl(questions_path(project)))
    assert len(questions) == held_out.planned == 6 * 4 and {q["kind"] for q in questions} == {"mc", "open"}
    trained = {normalized(m["content"]) for item in items if item["kind"] == "qa" for m in item["messages"][:1]}
    for question in questions:
        entity = world.entity_for_text(question["question"])
        attribute = next(a for a in ATTRIBUTES if question["question"] in
                         [t.format(n=entity.name) for t in (*ATTRIBUTES[a].heldout_questions, *EXTRA_HELDOUT[a])])
        assert normalized(question["question"]) not in trained
        assert question["reference"].startswith(entity.fact(attribute).value) if question["kind"] == "mc" else \
            entity.fact(attribute).value in question["reference"]


def test_a_second_run_writes_the_same_items_and_training_after_evaluation_passes_leakage_and_the_judge(tmp_path):
    first, _ = _lab_project(tmp_path / "first")
    _synthesize(first, eval=False)
    second, world = _lab_project(tmp_path / "second", grounding="judge")
    held_out = _synthesize(second, eval=True)
    train = _synthesize(second, eval=False)  # now checked for leakage against the held-out questions

    assert (train.failed, train.filtered, held_out.failed, held_out.filtered) == (0, 0, 0, 0), \
        (train.filtered_by_reason, held_out.filtered_by_reason)

    def content(project):
        return sorted((r["id"], r.get("text", ""), str(r.get("messages", ""))) for r in read_jsonl(items_path(project)))

    assert content(first) == content(second)
    judged = [r for r in read_jsonl(items_path(second)) if r["kind"] == "qa"]
    assert judged and all(r["meta"]["judge_supported"] for r in judged)


def test_the_judge_of_open_answers_tells_right_from_wrong():
    world = make_world(12, 3)
    entity = world.entities[0]
    fact = entity.facts[0]
    other = next(v for v in ATTRIBUTES[fact.attribute].values if v != fact.value)
    passage = render_document(entity, random.Random(0))
    reference = f"The {fact.label} of {entity.name} is {fact.value}."
    teacher = LabTeacher()

    def verdict(answer: str) -> str | None:
        return judge_answer(teacher, "Which?", reference, passage, answer).verdict

    assert verdict(f"It is {fact.value}.") == "correct"
    assert verdict(f"It is {fact.value}, or maybe {other}.") == "partial"
    assert verdict(f"It is {other}.") == "incorrect"
    assert verdict("I do not know.") == "incorrect"


def test_the_teacher_test_gets_valid_json_and_a_passage_without_lab_facts_a_failed_call():
    import pytest

    from doctune.core.commands.teacher import PROBE_MESSAGES, PROBE_SCHEMA
    from doctune.core.synth import schemas
    from doctune.core.synth.prompts import load_prompt
    from doctune.core.teachers import TeacherCallError

    teacher = LabTeacher()
    reply = teacher.complete(PROBE_MESSAGES, schema=PROBE_SCHEMA)
    assert schemas.check(PROBE_SCHEMA, reply.data) == [] and "lab teacher" in reply.data["fact"]
    messages = load_prompt("qa").messages(title="Vellmora", heading="", number=1, aspect="a name",
                                          passage="The archipelago was first charted by Amalie Corveth.")
    with pytest.raises(TeacherCallError, match="no fact of the lab world"):
        teacher.complete(messages, schema={"type": "object"})


def test_an_amplification_target_is_reached_though_the_teacher_writes_shorter_items_than_planned(tmp_path):
    """The plan sizes items from the schemas' limits; the lab teacher's items are far shorter. Synthesis measures
    them and plans more until the target is reached, and a second run finds nothing left to do."""
    from doctune.core.items import load_training_items
    from doctune.core.store import list_chunks
    from doctune.core.synth.coverage import document_coverage
    from doctune.core.synth.recipes import plan_tasks

    project, _ = _lab_project(tmp_path / "p")
    project.config.synth.recipes = {"qa": 1.0, "focal": 1.0}
    project.config.synth.amplification = 8.0
    project.save()
    chunks = list_chunks(project)
    from_schemas = plan_tasks(chunks, project.config.synth.recipes, project.config.synth)

    def achieved() -> float:
        rows = document_coverage(load_training_items(project), chunks)
        return sum(row.synthetic_tokens for row in rows) / sum(row.source_tokens for row in rows)

    first = _synthesize(project, eval=False)
    assert first.planned > 2 * len(from_schemas) and first.generated == first.planned
    assert 0.75 * 8 <= achieved() <= 1.5 * 8
    again = _synthesize(project, eval=False)
    assert (again.planned, again.already_done, again.generated) == (first.planned, first.planned, 0)
    dry = synthesize(SynthParams(project_dir=project.root, dry_run=True), events=Events(), cancel=CancelToken())
    assert dry.estimate["amplification"] == pytest.approx(achieved(), rel=0.2)  # at the measured sizes, not 8x more


def _amplified_project(root: Path, amplification: float, token_budget: int = 0) -> Project:
    project, _ = _lab_project(root)
    project.config.synth.recipes = {"qa": 1.0, "focal": 1.0}
    project.config.synth.amplification = amplification
    project.config.synth.token_budget = token_budget
    project.save()
    return project


def test_a_token_budget_stops_a_top_up_round_and_a_later_run_goes_on_to_the_same_items(tmp_path):
    """The budget holds inside the rounds that plan more (no task starts once it is spent); a run with a larger
    budget goes on from the items kept and ends about where an unlimited run ends (its plan is sized from the
    items measured so far, so within a few items)."""
    from doctune.core.events import RecordingSink

    unlimited = _synthesize(_amplified_project(tmp_path / "unlimited", 8.0), eval=False)
    project = _amplified_project(tmp_path / "budget", 8.0, token_budget=unlimited.completion_tokens // 2)
    sink = RecordingSink()
    stopped = synthesize(SynthParams(project_dir=project.root), events=Events(sink), cancel=CancelToken(),
                         open_teacher=open_teacher)
    assert stopped.deferred > 0 and stopped.generated < unlimited.generated
    assert any("Token budget" in event.get("message", "") for event in sink.of("warning"))
    # a round started (so the first pass did not spend the budget) and tasks were deferred: it ran out in the round
    assert any("shorter than planned" in event.get("message", "") for event in sink.of("log"))
    assert len(list(read_jsonl(items_path(project)))) == stopped.generated  # nothing deferred is written or marked done
    project.config.synth.token_budget = 0
    project.save()
    resumed = _synthesize(project, eval=False)
    assert resumed.already_done == stopped.generated and resumed.generated > 0
    assert resumed.already_done + resumed.generated == pytest.approx(unlimited.generated, rel=0.1)


def test_a_terse_teacher_cannot_multiply_the_plan_beyond_its_cap(tmp_path):
    from doctune.core.store import list_chunks
    from doctune.core.synth.recipes import MAX_TOP_UP, plan_tasks

    project = _amplified_project(tmp_path / "p", 64.0)
    chunks = list_chunks(project)
    settings = project.config.synth
    from_schemas = plan_tasks(chunks, settings.recipes, settings)
    one_token_items = plan_tasks(chunks, settings.recipes, settings, {"qa": 1.0, "focal": 1.0})
    assert len(one_token_items) == MAX_TOP_UP * len(from_schemas)
    long_items = plan_tasks(chunks, settings.recipes, settings, {"qa": 1e6, "focal": 1e6})
    assert long_items == from_schemas  # measured sizes never shrink a plan


def test_held_out_questions_are_not_topped_up(tmp_path, monkeypatch):
    """Held-out questions are counted per chunk; the amplification target is about training items only, however
    short the teacher's items are measured to be."""
    from doctune.core.events import RecordingSink
    from doctune.core.store import list_chunks
    from doctune.core.synth import step as synth_step
    from doctune.core.synth.recipes import plan_eval_tasks

    project = _amplified_project(tmp_path / "p", 8.0)
    _synthesize(project, eval=False)
    monkeypatch.setattr(synth_step, "measured_item_tokens", lambda project: {"qa": 1.0, "focal": 1.0})
    sink = RecordingSink()
    questions = synthesize(SynthParams(project_dir=project.root, eval=True), events=Events(sink),
                           cancel=CancelToken(), open_teacher=open_teacher)
    assert questions.planned == len(plan_eval_tasks(list_chunks(project), project.config.synth))
    assert not any("shorter than planned" in event.get("message", "") for event in sink.of("log"))
