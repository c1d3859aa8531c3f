"""What every synthesis recipe shares: tasks, drafts, the teacher context, and the ``Recipe`` record.

A *task* is one planned item: a recipe, a source (a chunk, or for EntiGraph a
window of consecutive chunks of one document), an index, and a seed. Its id
is a hash of those, so re-planning gives the same ids and a re-run skips what
is done. Running a task asks the teacher (one or more calls) and returns a
``Draft``. A reply that cannot be read as the asked JSON (no object, fields
missing or of the wrong shape) is asked again once, then raises
``UnusableReply``: a failed call, counted as failed and retried on the next
run, like a teacher that fails for good (``TeacherCallError``). A well-formed
reply that cannot make an item (too few entities, four options not all
different) raises ``InvalidOutput`` and is counted as filtered.

The recipes themselves are modules of ``doctune.core.synth.recipes``, each
defining one ``Recipe``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from doctune.core.items import content_hash
from doctune.core.synth import schemas
from doctune.core.teachers import Teacher, TeacherCallError

LETTERS = "ABCD"
EXPECTED_OUTPUT_SHARE = 0.6  # replies use about this share of the longest reply their schema allows


REPLY_ATTEMPTS = 2  # a reply that is not the asked JSON is asked for once more (with another seed)
UNUSABLE = "unusable reply"


class InvalidOutput(Exception):
    """A well-formed reply that cannot make an item (too few entities, options not all different …)."""


class UnusableReply(TeacherCallError):
    """The teacher's replies could not be read as the asked JSON: the call failed (retried on the next run)."""


@dataclass(frozen=True)
class Source:
    id: str
    chunk_ids: tuple[str, ...]
    doc_id: str
    title: str
    heading: str
    text: str
    n_tokens: int


@dataclass(frozen=True)
class Task:
    id: str
    recipe: str
    index: int
    source: Source
    seed: int


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    calls: int = 0
    attempts: int = 0


@dataclass
class Draft:
    """What a task produced, before filtering: ``fields`` depend on the kind."""

    task: Task
    kind: str  # qa | document | mc | open
    fields: dict[str, Any]
    prompt_hash: str
    usage: Usage
    meta: dict[str, Any] = field(default_factory=dict)


class SourceAnalyses(Protocol):
    """What a recipe asks the teacher once per source and reuses for each of its tasks (EntiGraph's summary and
    entities: ``recipes.entigraph.EntityCache``)."""

    def get_or_make(self, task: Task, ctx: GenerationContext, usage: Usage) -> dict[str, Any]: ...


class GenerationContext:
    """What recipes share while running: the teacher, the settings, the entity cache."""

    def __init__(self, teacher: Teacher, settings, entity_cache: SourceAnalyses | None = None) -> None:
        self.teacher = teacher
        self.settings = settings
        self.entities = entity_cache

    def ask(self, messages: list[dict[str, str]], schema: dict[str, Any], task: Task, usage: Usage,
            salt: str = "") -> dict[str, Any]:
        problem = ""
        for attempt in range(REPLY_ATTEMPTS):
            seed = task.seed if not salt else int(content_hash(task.id, salt)[:8], 16)
            if attempt:
                seed = int(content_hash(task.id, salt, "again", attempt)[:8], 16)
            reply = self.teacher.complete(messages, schema=schema, max_tokens=schemas.output_tokens(schema),
                                          seed=seed)
            usage.prompt_tokens += reply.prompt_tokens
            usage.completion_tokens += reply.completion_tokens
            usage.seconds += reply.seconds
            usage.calls += 1
            usage.attempts += reply.attempts
            if reply.data is None:
                problem = f"no JSON object in the reply ({reply.text[:80]!r})"
            elif problems := schemas.check(schema, reply.data):
                problem = "; ".join(problems[:3])
            else:
                return reply.data
        raise UnusableReply(f"{UNUSABLE}: {problem} (asked {REPLY_ATTEMPTS} times)")


def passage_values(task: Task) -> dict[str, Any]:
    source = task.source
    return {"title": source.title or "(untitled)", "heading": source.heading or "(none)",
            "passage": source.text, "number": task.index + 1}




Schemas = Callable[[Any], list[dict[str, Any]]]
Runner = Callable[[Task, GenerationContext, Usage], Draft]
Planner = Callable[[str, Sequence[dict[str, Any]], int, Any], list[Task]]


def letter_index(letter: str) -> int:
    return LETTERS.index(letter)


def make_task(recipe: str, source: Source, index: int, seed: int) -> Task:
    task_id = content_hash("synth", recipe, source.id, index, seed)
    return Task(task_id, recipe, index, source, int(task_id[:8], 16))


def chunk_sources(chunks: Sequence[dict[str, Any]]) -> list[Source]:
    return [Source(c["id"], (c["id"],), c["doc_id"], c.get("doc_title") or "", c.get("heading_path") or "",
                   c["text"], int(c.get("n_tokens") or 0)) for c in chunks]


def source_tokens(chunks: Sequence[dict[str, Any]]) -> int:
    """The tokens of the documents' text the ``chunks`` hold: what an amplification is measured against."""
    return sum(int(chunk.get("n_tokens") or 0) for chunk in chunks)


def plan_per_chunk(recipe: str, chunks: Sequence[dict[str, Any]], count: int, settings: Any) -> list[Task]:
    """``count`` tasks for every chunk, chunk by chunk (the plan of most recipes)."""
    return [make_task(recipe, source, i, settings.seed) for source in chunk_sources(chunks) for i in range(count)]


def no_setup(settings: Any) -> list[dict[str, Any]]:
    return []


@dataclass(frozen=True)
class Recipe:
    """One synthesis recipe: everything synthesis, the estimate, the CLI help and the Synthesize page know of it.

    ``call_schemas`` lists the JSON schema of each teacher call one task makes, in order (so its length is the
    calls per task); ``setup_schemas`` those made once per source before its tasks (EntiGraph's entity list).
    ``count`` says how many tasks per chunk for held-out recipes, whose amount is not a weight in the mix.
    """

    name: str
    label: str
    description: str
    purpose: Literal["train", "eval"]
    output: Literal["qa", "document", "mc", "open"]
    run: Runner
    call_schemas: Schemas
    setup_schemas: Schemas = no_setup
    plan: Planner = plan_per_chunk
    count: Callable[[Any], int] | None = None
    order: int = 100

    def calls_per_task(self, settings: Any) -> int:
        return len(self.call_schemas(settings))

    def expected_tokens(self, settings: Any) -> float:
        """Synthetic tokens one item is expected to hold: what its last call writes, at the share of the schema's
        longest reply that replies use, and four characters per token. This is the first plan's size; once a
        recipe has items, planning uses their measured size where that asks for more (``items_per_chunk``)."""
        longest_at_two_chars_per_token = schemas.output_tokens(self.call_schemas(settings)[-1])
        return max(1.0, longest_at_two_chars_per_token / 2 * EXPECTED_OUTPUT_SHARE)
