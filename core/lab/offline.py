"""The offline check on the knowledge lab: DocTune's claim shown on this computer, with no internet and no download.

``doctune sample DIR --offline-check`` (and the window's "Run the offline
pipeline check") makes a project whose documents are new entities of the lab
world, whose teacher is the lab teacher and whose student is the lab reader
(built once per computer, in minutes, under ``cache_root()``). ``doctune run``
then shows what the method does: the base reader cannot know the new
entities (about chance), with retrieval it reads them, and after tuning it
answers closed book.

The project carries the lab's own settings (``SYNTH`` and ``TRAIN``): a small
model trained from scratch in minutes on a made-up world learns from more items,
epochs and a higher learning rate than a pretrained student should get, so
these are not DocTune's defaults (see the README's knowledge lab section for
the sweep they come from).
"""
from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from doctune.core.lab import reader as lab_reader
from doctune.core.lab.world import READER_WORLD_SEED, Entity, make_world, render_document

OFFLINE_WORLD_SEED = 3
"""The offline check's documents; the knowledge lab's bench uses other seeds."""
DOCUMENTS = 20
READER_ENV = "DOCTUNE_LAB_READER"
"""A built reader folder to use instead of the cached one (the tests build a smaller reader once per session)."""
CACHE_ENV = "DOCTUNE_LAB_CACHE"

SYNTH: dict[str, Any] = {"per_chunk": 10, "amplification": 0.0, "eval_mc_per_chunk": 3, "eval_open_per_chunk": 1}
"""Ten items per recipe and document; three held-out multiple-choice questions per document, so the scoreboard's
intervals say something about twenty documents."""
TRAIN: dict[str, Any] = {"learning_rate": 5e-3, "lora_rank": 64, "lora_alpha": 128.0, "epochs": 10.0,
                         "replay_fraction": 0.0}
"""The lab's best point so far: the reader knew 45% of held-out questions closed book after it, against 30% before
(DocTune's defaults, made for pretrained students, left it at 29%)."""


def cache_root() -> Path:
    """Where the reader is built once per computer: ``$DOCTUNE_LAB_CACHE`` or the user's cache folder."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    import platformdirs

    return platformdirs.user_cache_path("doctune") / "lab"


def reader_folder(report: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """The lab reader's model folder: ``$DOCTUNE_LAB_READER`` when set, else built once (``report`` sees progress)."""
    given = os.environ.get(READER_ENV)
    if given:
        folder = Path(given)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{READER_ENV} names {folder}, which holds no model (no config.json).")
        return folder
    return lab_reader.ensure_reader(cache_root(), report=report)


def write_documents(folder: Path, seed: int, n: int) -> list[Entity]:
    """``n`` new entities of the lab world as Markdown files in ``folder`` (names never in the reader's pretraining)."""
    pretraining = make_world(READER_WORLD_SEED, lab_reader.WORLD_ENTITIES)
    world = make_world(seed, n, avoid=pretraining)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for entity in world.entities:
        (folder / entity.file_name).write_text(render_document(entity, rng), encoding="utf-8")
    return world.entities


def configure(project: Any, reader: Path) -> None:
    """The offline check's settings on ``project`` (saved by the caller): lab reader, lab teacher, lab settings."""
    config = project.config
    config.student.model = str(reader)
    config.teacher.kind = "lab"
    config.privacy.offline = True
    for name, value in SYNTH.items():
        setattr(config.synth, name, value)
    for name, value in TRAIN.items():
        setattr(config.train, name, value)


def documents_folder() -> Path:
    """The offline check's documents, written once beside the reader and read in place (as the sample's are)."""
    folder = cache_root() / f"documents-{OFFLINE_WORLD_SEED}-{DOCUMENTS}"
    if not any(folder.glob("*.md")):
        write_documents(folder, OFFLINE_WORLD_SEED, DOCUMENTS)
    return folder
