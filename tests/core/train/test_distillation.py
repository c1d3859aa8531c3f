"""Context distillation ([train] objective = "distill" / "mix"): the closed-book student learns the answer as the
same model gives it with the source passage in its prompt. Real tiny Qwen2, real chunks, real peft."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from train_helpers import assert_a_cancelled_run_resumes_to_the_same_end

from doctune.core.events import CancelToken, Events, RecordingSink
from doctune.core.fsio import read_jsonl
from doctune.core.items import TrainingItem
from doctune.core.store import list_chunks
from doctune.core.train import TrainParams, run
from doctune.core.train import data as packing

FAST = {"max_steps": 24, "batch_tokens": 1024, "learning_rate": 3e-3, "checkpoint_every": 8, "objective": "distill"}


def _student(project):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = project.config.student.model
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(folder)


def _examples(project, records, tokenizer) -> list[packing.Example]:
    from doctune.core.rag import Hit

    chunks = {chunk["id"]: chunk for chunk in list_chunks(project)}
    out = []
    for record in records:
        item = TrainingItem(**record)
        chunk = chunks[item.chunk_id]
        source = Hit(chunk["id"], chunk["doc_id"], chunk["doc_path"], chunk["doc_title"], None, None, chunk["text"], 0)
        out.append(packing.with_teacher_view(tokenizer, item, packing.tokenize_qa(tokenizer, item), source, 1024))
    return out


def _divergence(student, teacher, examples) -> float:
    """Mean KL(teacher with the passage ‖ student closed book) over the answers' tokens."""
    total, count = 0.0, 0
    with torch.no_grad():
        for example in examples:
            batch = packing.collate([example])
            s = student(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
            t = teacher(input_ids=batch["teacher_input_ids"], position_ids=batch["teacher_position_ids"]).logits[0]
            t_log = F.log_softmax(t[batch["teacher_index"]], -1)
            s_log = F.log_softmax(s[batch["student_index"]], -1)
            total += float((t_log.exp() * (t_log - s_log)).sum())
            count += len(batch["student_index"])
    return total / count


def test_a_teacher_view_holds_the_passage_and_the_same_answer_tokens(chunked_qa_project):
    project, _, records = chunked_qa_project
    _, tokenizer = _student(project)
    examples = _examples(project, records, tokenizer)
    assert all(example.teacher_ids for example in examples)
    example, record = examples[0], records[0]
    teacher_text = tokenizer.decode(example.teacher_ids)
    assert "Sources:" in teacher_text and "[1]" in teacher_text and record["messages"][0]["content"] in teacher_text
    assert len(example.teacher_ids) > example.n_tokens + 50  # the passage is in the teacher's prompt only
    batch = packing.collate(examples[:3])
    answers = [batch["input_ids"][0, i + 1] for i in batch["student_index"]]
    assert answers == [batch["teacher_input_ids"][0, i + 1] for i in batch["teacher_index"]]

    several_turns = TrainingItem(id="x", kind="qa", chunk_id="c", messages=[
        {"role": "user", "content": "Q1?"}, {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "Q2?"}, {"role": "assistant", "content": "A2"}])
    plain = packing.tokenize_qa(tokenizer, several_turns)
    from doctune.core.rag import Hit

    hit = Hit("c", "d", None, "T", None, None, "Some passage.", 0)
    assert packing.with_teacher_view(tokenizer, several_turns, plain, hit, 1024).teacher_ids is None


def test_distillation_moves_the_closed_book_student_towards_the_teacher_with_the_passage(chunked_qa_project):
    from peft import PeftModel

    project, items_file, records = chunked_qa_project
    sink = RecordingSink()
    result = run(TrainParams(project_dir=project.root, items_file=items_file, train=FAST), events=Events(sink),
                 cancel=CancelToken())
    assert any("Context distillation (distill): 6 of 6" in event.get("message", "") for event in sink.of("log"))
    base, tokenizer = _student(project)
    examples = _examples(project, records, tokenizer)
    before = _divergence(base, base, examples)
    tuned = PeftModel.from_pretrained(_student(project)[0], result.run_dir / "adapter").eval()
    with tuned.disable_adapter():
        teacher_unchanged = _divergence(tuned, tuned, examples)
    assert teacher_unchanged == pytest.approx(before, rel=1e-4)  # adapter off: the base model, the teacher
    teacher = _student(project)[0]
    after = _divergence(tuned, teacher, examples)
    assert after < 0.5 * before, (before, after)
    losses = [row["loss"] for row in read_jsonl(result.run_dir / "metrics.jsonl")]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("objective", ["distill", "mix"])
def test_a_cancelled_distillation_resumes_to_the_same_end(chunked_qa_project, objective):
    project, items_file, _ = chunked_qa_project
    settings = {**FAST, "max_steps": 6, "checkpoint_every": 2, "objective": objective}
    assert_a_cancelled_run_resumes_to_the_same_end(project, items_file, settings)


@pytest.mark.slow
def test_distillation_under_torchrun_with_two_processes(chunked_qa_project):
    import json
    import os
    import subprocess
    import sys

    project, items_file, _ = chunked_qa_project
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "doctune.core", "train", "-p", str(project.root), "--items", str(items_file), "--events", "jsonl",
               "--max-steps", "4", "--batch-tokens", "512", "--objective", "distill"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    losses = [e["loss"] for e in events if e["event"] == "metric"]
    assert len(losses) == 4 and all(loss == loss and loss >= 0 for loss in losses)  # finite, one report per step
    assert any("Context distillation (distill)" in e.get("message", "") for e in events if e["event"] == "log")
