"""The lab world: deterministic, new entities really new, questions split into families, MC at chance by design."""
import random
from collections import Counter

from doctune.core.lab.world import (
    ATTRIBUTES,
    KIND_ATTRIBUTES,
    make_world,
    multiple_choice,
    question,
    render_document,
    render_sentences,
)


def test_world_is_deterministic_and_new_entities_are_unseen():
    first, again = make_world(1, 30), make_world(1, 30)
    assert [e.name for e in first.entities] == [e.name for e in again.entities]
    assert [e.facts for e in first.entities] == [e.facts for e in again.entities]
    new = make_world(2, 30, avoid=first)
    assert not first.names & new.names
    assert len(new.names) == 30
    assert {e.kind for e in new.entities} == {"person", "town", "company"}


def test_document_states_every_fact_and_maps_back_to_its_entity():
    world = make_world(3, 12)
    rng = random.Random(0)
    for entity in world.entities:
        text = render_document(entity, rng)
        assert text.startswith(f"# {entity.name}\n\n")
        assert all(fact.value in text for fact in entity.facts)
        assert world.entity_for_text(text) is entity
        assert sorted(f.attribute for f, _ in render_sentences(entity, rng)) == sorted(KIND_ATTRIBUTES[entity.kind])


def test_question_families_are_disjoint_and_name_the_entity():
    entity = make_world(4, 3).entities[0]
    for attribute in KIND_ATTRIBUTES[entity.kind]:
        spec = ATTRIBUTES[attribute]
        assert not set(spec.train_questions) & set(spec.heldout_questions)
        asked = {question(entity, attribute, "heldout", random.Random(seed)) for seed in range(20)}
        assert len(asked) == len(spec.heldout_questions)
        assert all(entity.name in q for q in asked)


def test_multiple_choice_options_come_from_the_vocabulary_and_the_answer_position_is_uniform():
    world = make_world(5, 60)
    rng = random.Random(1)
    letters = Counter()
    for entity in world.entities:
        for attribute in KIND_ATTRIBUTES[entity.kind]:
            mc = multiple_choice(entity, attribute, rng)
            assert len(set(mc.options)) == 4 and set(mc.options) <= set(ATTRIBUTES[attribute].values)
            assert mc.reference == entity.fact(attribute).value and "ABCD"[mc.answer_index] == mc.answer
            letters[mc.answer] += 1
    assert all(count > 40 for count in letters.values())  # ~70 each of 280
