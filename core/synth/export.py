"""``doctune synth export``: the project's items as JSONL for other trainers.

- ``openai``: QA items as ``{"messages": [...]}`` (the chat fine-tuning format);
- ``sharegpt``: QA items as ``{"conversations": [{"from": "human"|"gpt"|"system", "value": ...}]}``.

In both, synthetic documents (continued-pretraining text) are written as
``{"text": "<title>\\n\\n<text>"}``, the plain-text form trainers such as TRL
and axolotl read for pretraining. Deleted items are left out.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from doctune.core.fsio import AtomicFile
from doctune.core.items import TrainingItem, load_training_items

FORMATS = ("openai", "sharegpt")
SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt"}


def export_record(item: TrainingItem, fmt: str) -> dict[str, Any]:
    if item.kind == "document":
        return {"text": f"{item.title}\n\n{item.text}" if item.title else item.text}
    if fmt == "openai":
        return {"messages": [{"role": m.role, "content": m.content} for m in item.messages]}
    return {"conversations": [{"from": SHAREGPT_ROLES[m.role], "value": m.content} for m in item.messages]}


def export_items(project, fmt: str, out: str | Path | None = None) -> tuple[Path, int]:
    """Write the items in ``fmt``; returns the file and how many records it holds."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    target = Path(out) if out else project.layout.synth_export(fmt)
    items = load_training_items(project)
    with AtomicFile(target) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(export_record(item, fmt), ensure_ascii=False) + "\n")
    return target, len(items)
