"""The synthesis recipes: what each asks the teacher, and what one task turns into.

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

Recipes:

- ``qa``: a self-contained question, its answer and a short explanation.
- ``focal``: a question about the passage, then the passage rewritten
  around that question (focal rewriting).
- ``rephrase``: the passage in one of four styles (cycled by index).
- ``entigraph``: per window, a summary and its entities (asked once, cached in
  ``synth/entities.jsonl``); each task writes how one sampled pair or triple
  of entities relates in the document.
- ``eval_mc`` / ``eval_open``: held-out questions, separate prompts, for ``eval/``.
"""
from __future__ import annotations

import itertools
import random
import threading
from dataclasses import dataclass, field
from math import comb
from pathlib import Path
from typing import Any

from doctune.core.fsio import JsonlAppender, read_jsonl
from doctune.core.items import content_hash
from doctune.core.synth import schemas
from doctune.core.synth.prompts import load_prompt
from doctune.core.teachers.base import Teacher, TeacherCallError

TRAIN_RECIPES = ("qa", "focal", "rephrase", "entigraph")
EVAL_RECIPES = ("eval_mc", "eval_open")
LETTERS = "ABCD"


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


class GenerationContext:
    """What recipes share while running: the teacher, the settings, the entity cache."""

    def __init__(self, teacher: Teacher, settings, entity_cache: "EntityCache | None" = None) -> None:
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


def _passage_values(task: Task) -> dict[str, Any]:
    source = task.source
    return {"title": source.title or "(untitled)", "heading": source.heading or "(none)",
            "passage": source.text, "number": task.index + 1}


# ----- recipes --------------------------------------------------------------------------------------

def run_qa(task: Task, ctx: GenerationContext, usage: Usage) -> Draft:
    prompt = load_prompt("qa")
    messages = prompt.messages(**_passage_values(task), aspect=prompt.pick("aspects", task.index))
    data = ctx.ask(messages, schemas.qa_schema(ctx.settings), task, usage)
    return Draft(task, "qa", data, prompt.hash, usage)


def run_focal(task: Task, ctx: GenerationContext, usage: Usage) -> Draft:
    ask = load_prompt("focal_question")
    rewrite = load_prompt("focal_rewrite")
    values = _passage_values(task)
    question = ctx.ask(ask.messages(**values, aspect=ask.pick("aspects", task.index)),
                       schemas.question_schema(ctx.settings), task, usage)["question"]
    data = ctx.ask(rewrite.messages(**values, question=question), schemas.document_schema(ctx.settings),
                   task, usage, salt="rewrite")
    return Draft(task, "document", data, content_hash(ask.hash, rewrite.hash), usage, {"question": question})


def run_rephrase(task: Task, ctx: GenerationContext, usage: Usage) -> Draft:
    prompt = load_prompt("rephrase")
    style = prompt.pick("styles", task.index)
    data = ctx.ask(prompt.messages(**_passage_values(task), style=style), schemas.document_schema(ctx.settings),
                   task, usage)
    return Draft(task, "document", data, prompt.hash, usage, {"style": style})


def entity_combinations(entities: list[str], window_id: str, seed: int, triples: bool) -> list[tuple[str, ...]]:
    """Pairs (then triples) of entities in a reproducible random order for this window and seed."""
    unique = list(dict.fromkeys(entity.strip() for entity in entities if entity.strip()))
    rng = random.Random(content_hash(window_id, seed))
    pairs = list(itertools.combinations(unique, 2))
    rng.shuffle(pairs)
    more = list(itertools.combinations(unique, 3)) if triples else []
    rng.shuffle(more)
    return pairs + more


def run_entigraph(task: Task, ctx: GenerationContext, usage: Usage) -> Draft:
    assert ctx.entities is not None
    analysis = ctx.entities.get_or_make(task, ctx, usage)
    combos = entity_combinations(analysis["entities"], task.source.id, ctx.settings.seed, ctx.settings.entigraph_triples)
    if task.index >= len(combos):
        raise InvalidOutput(f"not enough entities: {len(analysis['entities'])} found")
    chosen = combos[task.index]
    prompt = load_prompt("entigraph_relation")
    messages = prompt.messages(**_passage_values(task), summary=analysis["summary"],
                               entities=", ".join(f'"{name}"' for name in chosen))
    data = ctx.ask(messages, schemas.document_schema(ctx.settings), task, usage)
    prompt_hash = content_hash(load_prompt("entigraph_entities").hash, prompt.hash)
    return Draft(task, "document", data, prompt_hash, usage,
                 {"entities": list(chosen), "chunk_ids": list(task.source.chunk_ids)})


def run_eval_mc(task: Task, ctx: GenerationContext, usage: Usage) -> Draft:
    prompt = load_prompt("eval_mc")
    data = ctx.ask(prompt.messages(**_passage_values(task)), schemas.mc_schema(ctx.settings), task, usage)
    return Draft(task, "mc", data, prompt.hash, usage)


def run_eval_open(task: Task, ctx: GenerationContext, usage: Usage) -> Draft:
    prompt = load_prompt("eval_open")
    data = ctx.ask(prompt.messages(**_passage_values(task)), schemas.open_schema(ctx.settings), task, usage)
    return Draft(task, "open", data, prompt.hash, usage)


RUNNERS = {"qa": run_qa, "focal": run_focal, "rephrase": run_rephrase, "entigraph": run_entigraph,
           "eval_mc": run_eval_mc, "eval_open": run_eval_open}
CALLS_PER_TASK = {"qa": 1, "focal": 2, "rephrase": 1, "entigraph": 1, "eval_mc": 1, "eval_open": 1}


class EntityCache:
    """Summary and entities per EntiGraph window: asked once, kept in ``synth/entities.jsonl``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._records = {record["window_id"]: record for record in read_jsonl(path) if "window_id" in record}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._appender: JsonlAppender | None = None

    def _lock_for(self, window_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(window_id, threading.Lock())

    def get_or_make(self, task: Task, ctx: GenerationContext, usage: Usage) -> dict[str, Any]:
        window_id = task.source.id
        with self._lock_for(window_id):
            if window_id not in self._records:
                prompt = load_prompt("entigraph_entities")
                data = ctx.ask(prompt.messages(**_passage_values(task)), schemas.entities_schema(ctx.settings),
                               task, usage, salt="entities")
                record = {"schema_version": 1, "window_id": window_id, "summary": data["summary"],
                          "entities": data["entities"], "prompt_hash": prompt.hash}
                with self._guard:
                    if self._appender is None:
                        self._appender = JsonlAppender(self.path)
                    self._appender.append(record)
                self._records[window_id] = record
            return self._records[window_id]

    def count(self) -> int:
        return len(self._records)

    def close(self) -> None:
        if self._appender is not None:
            self._appender.close()


# ----- planning -------------------------------------------------------------------------------------

def chunk_sources(chunks: list[dict[str, Any]]) -> list[Source]:
    return [Source(c["id"], (c["id"],), c["doc_id"], c.get("doc_title") or "", c.get("heading_path") or "",
                   c["text"], int(c.get("n_tokens") or 0)) for c in chunks]


def window_sources(chunks: list[dict[str, Any]], window_tokens: int) -> list[Source]:
    """Consecutive chunks of each document grouped up to ``window_tokens`` (one window per short document)."""
    windows: list[Source] = []
    by_doc: dict[str, list[dict[str, Any]]] = {}
    for chunk in chunks:
        by_doc.setdefault(chunk["doc_id"], []).append(chunk)
    for doc_id, doc_chunks in by_doc.items():
        group: list[dict[str, Any]] = []
        for chunk in sorted(doc_chunks, key=lambda c: c["ordinal"]):
            tokens = sum(int(c.get("n_tokens") or 0) for c in group)
            if group and tokens + int(chunk.get("n_tokens") or 0) > window_tokens:
                windows.append(_window(doc_id, group))
                group = []
            group.append(chunk)
        if group:
            windows.append(_window(doc_id, group))
    return windows


def _window(doc_id: str, group: list[dict[str, Any]]) -> Source:
    ids = tuple(c["id"] for c in group)
    return Source(f"{ids[0]}+{len(ids)}", ids, doc_id, group[0].get("doc_title") or "", "",
                  "\n\n".join(c["text"] for c in group), sum(int(c.get("n_tokens") or 0) for c in group))


def _task(recipe: str, source: Source, index: int, seed: int) -> Task:
    task_id = content_hash("synth", recipe, source.id, index, seed)
    return Task(task_id, recipe, index, source, int(task_id[:8], 16))


def plan_tasks(chunks: list[dict[str, Any]], recipes: dict[str, float], settings) -> list[Task]:
    """Every task of a training run, in a stable order (chunk by chunk)."""
    tasks: list[Task] = []
    for name, weight in recipes.items():
        count = round(settings.per_chunk * weight)
        if count <= 0:
            continue
        if name == "entigraph":
            cap = comb(settings.entigraph_max_entities, 2) + (
                comb(settings.entigraph_max_entities, 3) if settings.entigraph_triples else 0)
            for window in window_sources(chunks, settings.entigraph_window_tokens):
                tasks += [_task(name, window, i, settings.seed) for i in range(min(cap, count * len(window.chunk_ids)))]
        else:
            for source in chunk_sources(chunks):
                tasks += [_task(name, source, i, settings.seed) for i in range(count)]
    return tasks


def plan_eval_tasks(chunks: list[dict[str, Any]], settings) -> list[Task]:
    tasks: list[Task] = []
    for source in chunk_sources(chunks):
        tasks += [_task("eval_mc", source, i, settings.seed) for i in range(settings.eval_mc_per_chunk)]
        tasks += [_task("eval_open", source, i, settings.seed) for i in range(settings.eval_open_per_chunk)]
    return tasks


def letter_index(letter: str) -> int:
    return LETTERS.index(letter)
