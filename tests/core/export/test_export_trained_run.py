"""A run written by the real training step (core/train) exports with every file verified."""
from __future__ import annotations

import json

from doctune.core.cli import main
from doctune.core.events import CancelToken, Events
from doctune.core.export import ready_gguf
from doctune.core.export.folder import read_manifest
from doctune.core.fsio import JsonlAppender
from doctune.core.resources import resource_path


def _items_file(path):
    lines = resource_path("sample/questions.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()][:12]
    with JsonlAppender(path, fsync=False) as log:
        log.append_many({"id": r["id"], "kind": "qa", "chunk_id": r["doc"], "recipe": "qa",
                         "messages": [{"role": "user", "content": r["question"]},
                                      {"role": "assistant", "content": r["answer"]}]} for r in records)
    return path


def test_core_train_run_exports(project, tiny_model, tmp_path):
    from doctune.core.train import TrainParams
    from doctune.core.train import run as train

    project.config.student.model = str(tiny_model("qwen2"))
    project.config.train.replay_fraction = 0.0
    project.save()
    params = TrainParams(project_dir=project.root, items_file=_items_file(tmp_path / "items.jsonl"),
                         train={"max_steps": 4, "batch_tokens": 256, "learning_rate": 3e-3,
                                "train_embeddings": True})
    result = train(params, events=Events(), cancel=CancelToken())
    code = main(["export", "-p", str(project.root), "--formats", "q8_0"])
    assert code == 0
    manifest = read_manifest(result.run_dir / "export")
    assert manifest["files"]["q8_0"]["ready"] and manifest["run_id"] == result.run_id
    assert ready_gguf(project) == result.run_dir / "export" / f"doctune-{result.run_id}-q8_0.gguf"
