"""Helpers shared by the training tests: the fictional sample QA pairs as training items."""
from __future__ import annotations

import json
from pathlib import Path

from doctune.core.fsio import JsonlAppender
from doctune.core.resources import resource_path


def sample_qa() -> list[dict]:
    lines = resource_path("sample/questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def qa_item(record: dict) -> dict:
    return {"id": record["id"], "kind": "qa", "chunk_id": record["doc"], "recipe": "qa",
            "messages": [{"role": "user", "content": record["question"]},
                         {"role": "assistant", "content": record["answer"]}]}


def write_items(path: Path, records: list[dict]) -> Path:
    path.unlink(missing_ok=True)
    with JsonlAppender(path, fsync=False) as log:
        log.append_many(records)
    return path


def greedy_exact_match(model_dir: Path, adapter_dir: Path | None, records: list[dict]) -> float:
    """Share of questions whose greedy answer is exactly the reference answer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir)
    model.eval()
    right = 0
    for record in records:
        text = tokenizer.apply_chat_template([{"role": "user", "content": record["question"]}], tokenize=False,
                                             add_generation_prompt=True)
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=24, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        answer = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
        right += answer == record["answer"]
    return right / len(records)


def train_until_cancelled(project, items_file: Path, step: int, train: dict) -> None:
    """A fresh run with ``train`` settings, cancelled once it has reported ``step`` (it stops at a safe point with a
    checkpoint)."""
    import pytest

    from doctune.core.events import Cancelled, CancelToken, Events
    from doctune.core.train import TrainParams, run

    cancel = CancelToken()

    def watch(event):
        if event["event"] == "metric" and event["step"] == step:
            cancel.cancel()

    with pytest.raises(Cancelled):
        run(TrainParams(project_dir=project.root, items_file=items_file, train=train), events=Events(watch),
            cancel=cancel)


def assert_a_cancelled_run_resumes_to_the_same_end(project, items_file: Path, settings: dict) -> str:
    """A run of ``settings`` (6 steps) cancelled at step 3 and resumed ends with the uninterrupted run's loss;
    returns the resumed run's id."""
    import pytest

    from doctune.core.events import CancelToken, Events
    from doctune.core.train import TrainParams, run

    reference = run(TrainParams(project_dir=project.root, items_file=items_file, train=settings), events=Events(),
                    cancel=CancelToken())
    train_until_cancelled(project, items_file, 3, settings)
    run_id = next(p.name for p in project.runs_dir.iterdir() if p.is_dir() and p != reference.run_dir)
    resumed = run(TrainParams(project_dir=project.root, resume=run_id), events=Events(), cancel=CancelToken())
    assert resumed.steps == 6 and resumed.final_loss == pytest.approx(reference.final_loss, abs=1e-3)
    return run_id
