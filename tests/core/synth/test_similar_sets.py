"""The near-duplicate and leakage indexes find exactly what comparing with every set finds, without doing so."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from doctune.core.synth.filters import DuplicateIndex, LeakageIndex, SimilarSets, jaccard

small_sets = st.frozensets(st.integers(0, 12), max_size=8)


@given(st.lists(small_sets, max_size=40), small_sets, st.sampled_from([0.3, 0.5, 0.6, 0.7, 0.8, 1.0]),
       st.sampled_from([1, 2, 3, 64]))
def test_similar_sets_answers_as_comparing_with_every_set(kept, probe, threshold, buffer):
    index = SimilarSets(threshold)
    index.BUFFER = buffer  # small buffers put the sets in indexed blocks of every size
    for elements in kept:
        index.add(elements)
    expected = any(jaccard(probe, other) >= threshold for other in kept if other or not probe)
    assert index.any_similar(probe) == expected


def test_a_near_duplicate_among_many_items_of_one_source_is_found_and_others_pass():
    index = DuplicateIndex(0.7)
    for n in range(3000):
        assert index.check_and_add("chunk-1", f"Item {n}: the lighthouse keeper logged storm number {n} in the year {1800 + n}.") is None
    reworded = "Item 1234: the lighthouse keeper logged storm number 1234 in the year 3034 ."
    assert index.check_and_add("chunk-1", reworded) == "duplicate"
    near = "Item 1234: the lighthouse keeper logged storm number 1234 in the year 3034 too."
    assert index.check_and_add("chunk-1", near) == "near-duplicate"
    assert index.check_and_add("chunk-2", near) is None  # near-duplicates are looked for within one source


def test_leakage_is_found_among_many_questions_by_content_words():
    training = [f"Which harbour did captain number {n} sail from in {1700 + n}?" for n in range(5000)]
    index = LeakageIndex(training, 0.6)
    assert index.leaks("From which harbour did captain number 4321 sail in 6021?")
    assert not index.leaks("Who painted the ceiling of the Velmora chapel?")


@given(st.lists(small_sets, max_size=40), small_sets, st.sampled_from([0.3, 0.5, 0.6, 0.7, 0.8, 1.0]),
       st.lists(small_sets, max_size=5))
def test_an_index_built_at_once_answers_as_comparing_with_every_set(kept, probe, threshold, added):
    index = SimilarSets.of(kept, threshold)
    for elements in added:
        index.add(elements)
    everything = kept + added
    expected = any(jaccard(probe, other) >= threshold for other in everything if other or not probe)
    assert index.any_similar(probe) == expected
