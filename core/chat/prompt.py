"""Fitting a chat prompt into the model's context window.

The question is always kept whole; retrieved sources come next (in rank
order, the last one cut to the room left), then as much recent conversation
as still fits. Every candidate prompt is measured with the model's own
renderer and tokenizer, so the result never exceeds the budget whatever the
chat template adds around each message.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from doctune.core.errors import UserError
from doctune.core.rag import Hit

Message = dict[str, str]

PLAIN_SYSTEM = "You are a helpful assistant. Answer the question concisely."
RAG_SYSTEM = (
    "You are a helpful assistant. Answer the question using only the numbered sources given with it. "
    "Cite the sources you use with their numbers in square brackets, like [1] or [2][3]. "
    "If the sources do not contain the answer, say that you do not know."
)
CITATION = re.compile(r"\[(\d+)\]")


class QuestionTooLong(UserError):
    """The question alone does not fit into the context window."""


@dataclass
class Counter:
    """How the prompt is measured and cut: the model's template and tokenizer."""

    count: Callable[[list[Message]], int]
    """Tokens of the rendered prompt of these messages (with the generation prompt)."""
    truncate: Callable[[str, int], str]
    """The longest prefix of a text that is at most this many tokens."""
    tokens: Callable[[str], int]
    """Tokens of a bare text."""


@dataclass
class Prompt:
    messages: list[Message]
    sources: list[Hit] = field(default_factory=list)
    """The sources in the prompt, numbered from 1 in this order, with the text as given to the model."""
    tokens: int = 0
    history_kept: int = 0
    """How many of the most recent history messages fit."""


def system_message(rag: bool) -> Message:
    """DocTune's system prompt: with sources (RAG) or closed book."""
    return {"role": "system", "content": RAG_SYSTEM if rag else PLAIN_SYSTEM}


def with_closed_book_system(messages: Sequence[Message]) -> list[Message]:
    """A chat as the closed-book chat and the evaluation ask it: DocTune's closed-book system prompt first (a chat
    that already opens with a system message is kept as it is).

    Training renders question-answer items through this too, so the student learns the question in the form it
    will be asked in (trained without it, a tuned student scored 54% on held-out multiple choice asked with it
    and 81% asked without; see ``doctune.core.train.data``).
    """
    messages = [dict(message) for message in messages]
    if messages and messages[0].get("role") == "system":
        return messages
    return [system_message(rag=False), *messages]


def with_sources(messages: Sequence[Message], sources: Sequence[Hit]) -> list[Message] | None:
    """A one-question chat (a user turn and its answer) as base + RAG asks it, with ``sources`` in the user turn
    and DocTune's RAG system prompt; None for any other chat (several turns, or a system message of its own).

    Context distillation trains the closed-book student towards what the same model answers with this prompt.
    """
    turns = [dict(message) for message in messages]
    if [turn.get("role") for turn in turns] != ["user", "assistant"]:
        return None
    return [system_message(rag=True), user_message(str(turns[0]["content"]), sources), turns[1]]


def source_block(number: int, hit: Hit) -> str:
    return f"[{number}] {hit.label}\n{hit.text.strip()}"


def user_message(question: str, sources: Sequence[Hit]) -> Message:
    if not sources:
        return {"role": "user", "content": question}
    blocks = "\n\n".join(source_block(number, hit) for number, hit in enumerate(sources, 1))
    return {"role": "user", "content": f"Sources:\n\n{blocks}\n\nQuestion: {question}"}


def cited_numbers(answer: str, n_sources: int) -> list[int]:
    """Source numbers the answer cites, in first-mention order, only those that exist."""
    seen: list[int] = []
    for match in CITATION.finditer(answer):
        number = int(match.group(1))
        if 1 <= number <= n_sources and number not in seen:
            seen.append(number)
    return seen


def _with_text(hit: Hit, text: str) -> Hit:
    return Hit(hit.chunk_id, hit.doc_id, hit.doc_path, hit.doc_title, hit.page_start, hit.page_end, text, hit.score)


def _largest_fitting_cut(text: str, fits: Callable[[str], bool], counter: Counter, min_tokens: int) -> str | None:
    """Binary search on the token length of a prefix of ``text`` that still fits."""
    low, high, best = min_tokens, counter.tokens(text) - 1, None
    while low <= high:
        middle = (low + high) // 2
        cut = counter.truncate(text, middle)
        if fits(cut):
            best, low = cut, middle + 1
        else:
            high = middle - 1
    return best


def assemble(
    question: str,
    *,
    budget: int,
    counter: Counter,
    sources: Sequence[Hit] = (),
    history: Sequence[Message] = (),
    rag: bool = False,
    min_source_tokens: int = 32,
) -> Prompt:
    """The messages for one turn, at most ``budget`` tokens once rendered.

    Raises ``QuestionTooLong`` when even the question alone does not fit.
    """
    system = system_message(rag)

    def measure(kept_history: Sequence[Message], kept_sources: Sequence[Hit]) -> int:
        return counter.count([system, *kept_history, user_message(question, kept_sources)])

    alone = measure((), ())
    if alone > budget:
        raise QuestionTooLong(
            f"The question is too long for the model's context: it needs {alone} tokens with the instructions, "
            f"and {budget} are available for the prompt.",
            hint="Shorten the question, or raise rag.n_ctx (or lower rag.max_answer_tokens) in doctune.toml.",
            window_hint="Ask a shorter question on the Compare page.",
        )
    kept_sources: list[Hit] = []
    for hit in sources:
        if measure((), [*kept_sources, hit]) <= budget:
            kept_sources.append(hit)
            continue
        cut = _largest_fitting_cut(  # the lambda runs within this iteration, which ends the loop
            hit.text, lambda text: measure((), [*kept_sources, _with_text(hit, text)]) <= budget,  # noqa: B023
            counter, min_source_tokens,
        )
        if cut:
            kept_sources.append(_with_text(hit, cut))
        break
    kept_history = _recent_history_that_fits(history, lambda kept: measure(kept, kept_sources) <= budget)
    messages = [system, *kept_history, user_message(question, kept_sources)]
    return Prompt(messages, kept_sources, counter.count(messages), len(kept_history))


def _recent_history_that_fits(history: Sequence[Message], fits: Callable[[Sequence[Message]], bool]) -> list[Message]:
    """The longest suffix of the history that fits, starting at a user turn (whole exchanges only)."""
    history = [{"role": m["role"], "content": m["content"]} for m in history if m.get("role") in ("user", "assistant")]
    starts = [index for index, message in enumerate(history) if message["role"] == "user"]
    for start in starts:  # oldest first: the first that fits keeps the most
        if fits(history[start:]):
            return history[start:]
    return []
