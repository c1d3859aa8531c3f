"""The synthesis recipes, one module each; this package finds them.

A recipe module defines ``RECIPE = Recipe(...)`` (see ``doctune.core.synth.tasks.Recipe``): its name, the label
and description the window and the CLI show, whether it makes training items or held-out questions, the schemas
of its teacher calls (which the estimate counts), how it plans its tasks and how it runs one. Synthesis, the
estimate, ``doctune synth --help`` and the Synthesize page all read ``REGISTRY``, so adding a recipe is adding
one module here.

Recipes today:

- ``qa``: a self-contained question, its answer and a short explanation.
- ``focal``: a question about the passage, then the passage rewritten around that question.
- ``rephrase``: the passage in one of four styles (cycled by index).
- ``entigraph``: how sampled pairs or triples of a document's entities relate.
- ``eval_mc`` / ``eval_open``: held-out questions, separate prompts, for ``eval/``.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping, Sequence
from typing import Any

from doctune.core.config import SynthSettings
from doctune.core.synth.recipes.entigraph import EntityCache, entity_combinations, window_sources
from doctune.core.synth.tasks import Recipe, Task, chunk_sources, make_task, source_tokens


def _discover() -> dict[str, Recipe]:
    found: list[Recipe] = []
    for module in pkgutil.iter_modules(__path__):
        recipe = getattr(importlib.import_module(f"{__name__}.{module.name}"), "RECIPE", None)
        if isinstance(recipe, Recipe):
            found.append(recipe)
    return {recipe.name: recipe for recipe in sorted(found, key=lambda r: (r.order, r.name))}


REGISTRY: dict[str, Recipe] = _discover()
TRAIN_RECIPES: tuple[str, ...] = tuple(name for name, r in REGISTRY.items() if r.purpose == "train")
EVAL_RECIPES: tuple[str, ...] = tuple(name for name, r in REGISTRY.items() if r.purpose == "eval")


MAX_TOP_UP = 8
"""Measured item sizes raise a recipe's items per chunk to at most this many times what the schemas' sizes plan:
a teacher whose items come out tiny cannot multiply the work without bound."""


def items_per_chunk(name: str, recipes: dict[str, float], chunks: Sequence[dict[str, Any]],
                    settings: SynthSettings, measured: Mapping[str, float] | None = None) -> int:
    """How many items of recipe ``name`` each chunk gets: with an amplification target, enough for the recipe's
    share (by weight) of ``amplification`` × the source tokens, at the tokens one of its items is expected to hold;
    else ``per_chunk`` × its weight.

    ``measured`` holds the tokens the teacher's items of each recipe really hold (``measured_item_tokens``): when
    they are shorter than the schemas' sizes expect, the count grows to reach the target (up to ``MAX_TOP_UP``
    times); it never shrinks, so what a first plan asked for stays planned."""
    if not settings.amplification:
        return round(settings.per_chunk * recipes[name])
    share = recipes[name] / sum(recipes.values())
    wanted_tokens = settings.amplification * share * source_tokens(chunks) / max(1, len(chunks))
    planned = max(1, round(wanted_tokens / REGISTRY[name].expected_tokens(settings)))
    size = (measured or {}).get(name)
    if not size:
        return planned
    return max(planned, min(planned * MAX_TOP_UP, round(wanted_tokens / size)))


def plan_tasks(chunks: Sequence[dict[str, Any]], recipes: dict[str, float], settings: SynthSettings,
               measured: Mapping[str, float] | None = None) -> list[Task]:
    """Every task of a training run, in a stable order: recipe by recipe as weighted, each chunk by chunk.

    Raising the amount (``per_chunk``, ``amplification``, or ``measured`` sizes smaller than expected) only adds
    tasks: a task's id does not depend on how many there are, so a later run extends a generation without redoing
    what exists."""
    tasks: list[Task] = []
    for name in recipes:
        count = items_per_chunk(name, recipes, chunks, settings, measured)
        if count > 0:
            tasks += REGISTRY[name].plan(name, chunks, count, settings)
    return tasks


def plan_eval_tasks(chunks: Sequence[dict[str, Any]], settings: Any) -> list[Task]:
    """Every held-out question task: for each chunk, each held-out recipe's count of tasks."""
    return [make_task(name, source, i, settings.seed)
            for source in chunk_sources(chunks)
            for name in EVAL_RECIPES
            for i in range(_eval_count(REGISTRY[name], settings))]


def _eval_count(recipe: Recipe, settings: Any) -> int:
    """How many tasks of a held-out recipe each chunk gets (0 for a recipe without a count)."""
    return recipe.count(settings) if recipe.count else 0


__all__ = ["REGISTRY", "TRAIN_RECIPES", "EVAL_RECIPES", "Recipe", "plan_tasks", "plan_eval_tasks", "EntityCache",
           "entity_combinations", "window_sources"]
