"""Training settings measured for one student, carried in its folder.

DocTune's ``[train]`` defaults are those of pretrained students (LoRA at a
learning rate of 2e-4 for three epochs). A student that needs others says so
in its folder: ``doctune-student.json`` holds ``{"schema_version": 1, "train": {...}, "why": "..."}``
with the settings measured to teach *that* model. The knowledge lab's reader,
a small model trained from scratch, carries the settings its sweep found (it
learns nothing measurable at the pretrained defaults).

Choosing such a student for a project writes its settings into the project's
``[train]`` section, where the user sees them (Train page, ``doctune.toml``)
and can change them; a one-run ``--student`` takes them for that run under the
run's own options. A hub id or a folder without the file keeps the project's
settings as they are.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from doctune.core.config import ConfigError, ProjectConfig, TrainSettings, _describe

SETTINGS_FILE = "doctune-student.json"
SCHEMA_VERSION = 1
MODEL_SETTINGS = frozenset({
    "objective", "qa_to_document_ratio", "open_book_fraction", "open_book_distractors", "open_book_source_first",
    "replay_fraction",
    "lora_rank", "lora_alpha", "lora_dropout", "target_modules", "train_embeddings", "learning_rate",
    "lr_scheduler", "warmup_ratio", "weight_decay", "max_grad_norm", "epochs", "batch_tokens", "max_seq_len",
})
"""What a student may recommend: how it learns. Where and how fast this computer trains (device, precision,
threads, 4-bit loading, checkpoints, a step limit) stays the user's."""


def settings_file(model: str) -> Path | None:
    """The recommendations file of a student given as a local folder, if it has one."""
    if not model:
        return None
    candidate = Path(model).expanduser() / SETTINGS_FILE
    return candidate if candidate.is_file() else None


def recommended_train(model: str) -> dict[str, Any]:
    """The ``[train]`` settings the student's folder recommends (empty when it recommends none).

    A file that cannot be read or names a setting or value DocTune does not accept raises ``ConfigError``
    naming the file and each problem, so a student is never trained with half of what its maker measured."""
    path = settings_file(model)
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(str(path), [f"cannot be read as JSON ({exc})"]) from None
    version = data.get("schema_version", SCHEMA_VERSION) if isinstance(data, dict) else SCHEMA_VERSION
    if not isinstance(version, int) or isinstance(version, bool) or version > SCHEMA_VERSION:
        raise ConfigError(str(path), [f"is written for a newer DocTune (schema_version {version!r}; this one reads "
                                      f"{SCHEMA_VERSION}): update DocTune or choose another student"])
    train = data.get("train") if isinstance(data, dict) else None
    if not isinstance(train, dict):
        raise ConfigError(str(path), ["needs a 'train' object of training settings, e.g. {\"train\": {\"epochs\": 5}}"])
    try:
        validated = TrainSettings.model_validate(train)
    except ValidationError as exc:
        raise ConfigError(str(path), [_describe(dict(error)) for error in exc.errors()]) from None
    foreign = sorted(set(train) - MODEL_SETTINGS)
    if foreign:
        raise ConfigError(str(path), [f"recommends '{name}', which is this computer's choice, not the student's; "
                                      "remove it" for name in foreign])
    return validated.model_dump(include=set(train))


def choose_student(config: ProjectConfig, model: str) -> dict[str, Any]:
    """Make ``model`` the project's student and take the training settings its folder recommends; returns the
    settings that changed (name: new value), for the caller to tell the user. The caller saves the project.

    Settings the previous student brought leave with it: each one it recommended that the new student does not,
    and that still has the value it brought (the user did not change it since), goes back to DocTune's default.
    So a pretrained student chosen after the lab reader does not train at the reader's learning rate. What a
    student brought is kept in the project (``[student] brought``), since its folder may change or go."""
    recommended = recommended_train(model)
    brought = config.student.brought or _recommended_or_none(config.student.model)  # or chosen before it was kept
    defaults = TrainSettings().model_dump()
    leaving = {name: defaults[name] for name, value in brought.items()
               if name in defaults and name not in recommended and getattr(config.train, name) == value}
    wanted = leaving | recommended
    changed = {name: value for name, value in wanted.items() if getattr(config.train, name) != value}
    config.student.model = model
    config.student.brought = recommended
    for name, value in changed.items():
        setattr(config.train, name, value)
    return changed


def _recommended_or_none(model: str) -> dict[str, Any]:
    """What a student recommends, or nothing when its file is broken (it was checked when it was chosen)."""
    try:
        return recommended_train(model)
    except ConfigError:
        return {}


def describe_changes(changed: dict[str, Any]) -> str:
    """``learning_rate 0.005, epochs 10`` as the user reads it: 'learning rate 0.005, epochs 10'."""
    return ", ".join(f"{name.replace('_', ' ')} {value:g}" if isinstance(value, float) else
                     f"{name.replace('_', ' ')} {value}" for name, value in changed.items())
