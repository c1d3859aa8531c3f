"""Helpers of the evaluation tests: the sample questions as EvalQuestion records, stable result fields."""
from __future__ import annotations

import json
from pathlib import Path

from doctune.core.resources import resource_path

VOLATILE = ("ttft_s", "total_s", "model_s", "rss_mb", "answered_at", "judged_at")


def sample_questions(kinds: tuple[str, ...] = ("mc", "open")) -> list[dict]:
    """The bundled fictional-facts questions as EvalQuestion records: each as multiple choice and/or open."""
    records = []
    for line in resource_path("sample/questions.jsonl").read_text(encoding="utf-8").splitlines():
        raw = json.loads(line)
        common = {"doc_id": raw["doc"], "chunk_id": f"{raw['doc']}-0", "source_text": raw["evidence"],
                  "question": raw["question"]}
        if "mc" in kinds:
            records.append({"id": f"{raw['id']}-mc", "kind": "mc", "options": raw["options"], "answer": raw["correct"],
                            "reference": raw["answer"], **common})
        if "open" in kinds:
            records.append({"id": f"{raw['id']}-open", "kind": "open", "answer": raw["answer"], **common})
    return records


def write_questions(project, records: list[dict]) -> Path:
    path = Path(project.eval_dir) / "questions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def stable(records: list[dict]) -> list[dict]:
    """Result records without the fields that differ from run to run (timings, memory, clock times)."""
    return [{key: value for key, value in record.items() if key not in VOLATILE} for record in records]
