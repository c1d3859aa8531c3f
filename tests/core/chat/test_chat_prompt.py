"""Prompt assembly: the question whole, sources then history fitted, never over the budget."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from doctune.core.chat.prompt import RAG_SYSTEM, Counter, QuestionTooLong, assemble, cited_numbers, user_message
from doctune.core.rag.hits import Hit

PER_MESSAGE = 4  # what a chat template adds around each message, in "tokens"


def word_counter() -> Counter:
    def count(messages):
        return sum(len(message["content"].split()) + PER_MESSAGE for message in messages) + 2

    return Counter(count=count, truncate=lambda text, n: " ".join(text.split()[:n]), tokens=lambda text: len(text.split()))


def hit(number: int, words: int) -> Hit:
    return Hit(f"c{number}", f"d{number}", f"/docs/{number}.pdf", f"Doc {number}", number, number,
               " ".join(f"w{number}x{i}" for i in range(words)), 1.0 / number)


words = st.integers(min_value=1, max_value=300)


@given(
    question_words=st.integers(min_value=1, max_value=400),
    source_words=st.lists(words, max_size=10),
    history_words=st.lists(words, max_size=12),
    budget=st.integers(min_value=20, max_value=1500),
)
def test_prompt_never_exceeds_the_budget(question_words, source_words, history_words, budget):
    counter = word_counter()
    question = " ".join(f"q{i}" for i in range(question_words))
    sources = [hit(n, size) for n, size in enumerate(source_words, 1)]
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": " ".join(["h"] * size)}
               for i, size in enumerate(history_words)]
    try:
        prompt = assemble(question, budget=budget, counter=counter, sources=sources, history=history, rag=True)
    except QuestionTooLong:
        assert counter.count([{"role": "system", "content": RAG_SYSTEM}, user_message(question, [])]) > budget
        return
    assert prompt.tokens == counter.count(prompt.messages) <= budget
    assert prompt.messages[-1]["content"].endswith(f"Question: {question}" if prompt.sources else question)
    assert [s.chunk_id for s in prompt.sources] == [s.chunk_id for s in sources[: len(prompt.sources)]]
    for used, given_source in zip(prompt.sources, sources):
        assert given_source.text.startswith(used.text) and used.page_start == given_source.page_start
    kept = prompt.messages[1:-1]
    assert kept == history[len(history) - len(kept):] and (not kept or kept[0]["role"] == "user")


def test_question_too_long_says_how_long_and_what_to_do():
    with pytest.raises(QuestionTooLong) as caught:
        assemble(" ".join(["word"] * 500), budget=100, counter=word_counter())
    assert "too long" in str(caught.value) and "rag.n_ctx" in str(caught.value)


def test_sources_are_numbered_with_document_and_page():
    content = user_message("Who?", [hit(1, 3), hit(2, 3)])["content"]
    assert "[1] Doc 1, p. 1\nw1x0 w1x1 w1x2" in content and "[2] Doc 2, p. 2" in content
    assert content.endswith("Question: Who?")


def test_cited_numbers_keep_only_existing_sources_in_order():
    assert cited_numbers("As [2] says, and [1][2], not [7] or [0].", 3) == [2, 1]
