"""``entigraph``: texts on how the entities of a document relate (EntiGraph).

Per window of consecutive chunks of one document, the teacher is asked once for a summary and the entities
(cached in ``synth/entities.jsonl``); each task then writes how one sampled pair or triple of those entities
relates in the document.
"""
from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Sequence
from math import comb
from pathlib import Path
from typing import Any

from doctune.core.fsio import JsonlAppender, read_jsonl
from doctune.core.items import content_hash
from doctune.core.synth import schemas
from doctune.core.synth.prompts import load_prompt
from doctune.core.synth.tasks import (
    Draft,
    GenerationContext,
    InvalidOutput,
    Recipe,
    Source,
    Task,
    Usage,
    make_task,
    passage_values,
)


def entity_combinations(entities: list[str], window_id: str, seed: int, triples: bool) -> list[tuple[str, ...]]:
    """Pairs (then triples) of entities in a reproducible random order for this window and seed."""
    unique = list(dict.fromkeys(entity.strip() for entity in entities if entity.strip()))
    rng = random.Random(content_hash(window_id, seed))
    pairs: list[tuple[str, ...]] = list(itertools.combinations(unique, 2))
    rng.shuffle(pairs)
    more: list[tuple[str, ...]] = list(itertools.combinations(unique, 3)) if triples else []
    rng.shuffle(more)
    return pairs + more


def run(task: Task, ctx: GenerationContext, usage: Usage) -> Draft:
    assert ctx.entities is not None
    analysis = ctx.entities.get_or_make(task, ctx, usage)
    combos = entity_combinations(analysis["entities"], task.source.id, ctx.settings.seed, ctx.settings.entigraph_triples)
    if task.index >= len(combos):
        raise InvalidOutput(f"not enough entities: {len(analysis['entities'])} found")
    chosen = combos[task.index]
    prompt = load_prompt("entigraph_relation")
    messages = prompt.messages(**passage_values(task), summary=analysis["summary"],
                               entities=", ".join(f'"{name}"' for name in chosen))
    data = ctx.ask(messages, schemas.document_schema(ctx.settings), task, usage)
    prompt_hash = content_hash(load_prompt("entigraph_entities").hash, prompt.hash)
    return Draft(task, "document", data, prompt_hash, usage,
                 {"entities": list(chosen), "chunk_ids": list(task.source.chunk_ids)})


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
                data = ctx.ask(prompt.messages(**passage_values(task)), schemas.entities_schema(ctx.settings),
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


def window_sources(chunks: Sequence[dict[str, Any]], window_tokens: int) -> list[Source]:
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


def plan(recipe: str, chunks: Sequence[dict[str, Any]], count: int, settings: Any) -> list[Task]:
    """``count`` tasks per chunk of each window, at most as many as the window's entity pairs (and triples)."""
    cap = comb(settings.entigraph_max_entities, 2) + (
        comb(settings.entigraph_max_entities, 3) if settings.entigraph_triples else 0)
    return [make_task(recipe, window, i, settings.seed)
            for window in window_sources(chunks, settings.entigraph_window_tokens)
            for i in range(min(cap, count * len(window.chunk_ids)))]


RECIPE = Recipe(
    name="entigraph", label="Entity links", order=40, purpose="train", output="document", run=run, plan=plan,
    description="Texts on how the entities of a document relate, pair by pair (EntiGraph).",
    call_schemas=lambda settings: [schemas.document_schema(settings)],
    setup_schemas=lambda settings: [schemas.entities_schema(settings)],
)
