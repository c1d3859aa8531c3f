"""Short real training runs on the tiny Qwen2: run folder, events, replay, cancel, checkpoints, resume."""
from __future__ import annotations

import errno
import json

import pytest
import torch
from train_helpers import qa_item, sample_qa, train_until_cancelled, write_items

from doctune.core.events import CancelToken, Events, RecordingSink
from doctune.core.fsio import read_json, read_jsonl
from doctune.core.train import TrainError, TrainParams, latest_complete_run, run
from doctune.core.train.checkpoints import latest_checkpoint

FAST = {"max_steps": 6, "batch_tokens": 256, "learning_rate": 3e-3, "checkpoint_every": 2}


def _train(project, items_file, sink=None, cancel=None, **overrides):
    params = TrainParams(project_dir=project.root, items_file=items_file, train={**FAST, **overrides})
    return run(params, events=Events(sink or RecordingSink()), cancel=cancel or CancelToken())


def test_run_folder_holds_config_adapter_tokenizer_metrics_and_summary(student_project, qa_items_file):
    sink = RecordingSink()
    result = _train(student_project, qa_items_file, sink)
    run_dir = result.run_dir
    config = read_json(run_dir / "config.json")
    assert config["train"]["max_steps"] == 6 and config["train"]["lora_rank"] == 16
    assert config["data"]["items"] == 40 and len(config["data"]["items_fingerprint"]) == 16
    assert {"torch", "transformers", "peft"} <= set(config["versions"])
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert (run_dir / "adapter" / "tokenizer.json").is_file()
    assert [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]
    summary = read_json(run_dir / "summary.json")
    assert summary["status"] == "complete" and summary["base_model"] == student_project.config.student.model
    metric = sink.of("metric")[-1]
    assert {"step", "total_steps", "loss", "lr", "tokens_per_s", "eta_s"} <= set(metric)
    assert metric["step"] == metric["total_steps"] == 6 and metric["tokens_per_s"] > 0
    assert latest_complete_run(student_project) == run_dir
    assert not list(run_dir.glob(".tmp-*")) and not list((run_dir / "checkpoints").glob(".tmp-*"))


def test_schema_failing_items_are_reported_by_id_skipped_and_counted(student_project, tmp_path):
    good = [qa_item(r) for r in sample_qa()[:8]]
    bad = [{"id": "broken-1", "kind": "qa", "messages": []}, {"id": "broken-2", "kind": "essay", "text": "x"}]
    items = write_items(tmp_path / "mixed.jsonl", good[:4] + bad + good[4:])
    sink = RecordingSink()
    result = _train(student_project, items, sink, max_steps=2)
    warnings = [w["message"] for w in sink.of("warning")]
    assert any("broken-1" in w for w in warnings) and any("broken-2" in w for w in warnings)
    assert any(w.get("skipped") == 2 for w in sink.of("warning"))
    assert read_json(result.run_dir / "config.json")["data"]["items"] == 8


def _doc_loss(model_dir, adapter_dir, text):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if adapter_dir:
        model = PeftModel.from_pretrained(model, adapter_dir)
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    with torch.no_grad():
        return float(model.eval()(input_ids=ids, labels=ids).loss)


def test_document_items_lower_the_loss_on_their_own_text(student_project, tmp_path):
    text = "The Quintrel Foundry cast its first bell, a small treble named Margery, in 1761."
    items = write_items(tmp_path / "docs.jsonl", [{"id": "d1", "kind": "document", "title": "", "text": text}])
    result = _train(student_project, items, max_steps=8)
    student = student_project.config.student.model
    assert _doc_loss(student, result.adapter_dir, text) < _doc_loss(student, None, text) - 1.0


def test_replay_answers_are_cached_and_mixed_at_the_configured_fraction(student_project, qa_items_file):
    overrides = dict(replay_fraction=0.25, replay_prompts=6, replay_max_new_tokens=12, max_steps=0, epochs=1)
    sink = RecordingSink()
    result = _train(student_project, qa_items_file, sink, **overrides)
    cached = list((student_project.cache_dir / "replay").glob("*.jsonl"))
    assert len(cached) == 1 and len(list(read_jsonl(cached[0]))) == 6
    mix = read_json(result.run_dir / "config.json")["data"]["mix"]
    share = mix["replay"]["tokens"] / sum(entry["tokens"] for entry in mix.values())
    assert share == pytest.approx(0.25, abs=0.03) and mix["replay"]["sequences"] > 0
    again = RecordingSink()
    _train(student_project, qa_items_file, again, **overrides)
    assert not [e for e in again.events if e.get("stage") == "train.replay"]  # answered once per student


def _train_until_cancelled(project, items_file, step: int) -> None:
    """A fresh run cancelled once it has reported ``step`` (it stops at a safe point with a checkpoint)."""
    train_until_cancelled(project, items_file, step, FAST)


def test_cancel_checkpoints_and_resume_finishes_like_an_uninterrupted_run(student_project, qa_items_file):
    reference = _train(student_project, qa_items_file)
    _train_until_cancelled(student_project, qa_items_file, 3)
    run_id = read_json(next(p for p in student_project.runs_dir.glob("*/config.json")
                            if p.parent != reference.run_dir))["run_id"]
    run_dir = student_project.runs_dir / run_id
    assert latest_checkpoint(run_dir).name == "step-00000003"
    assert not (run_dir / "summary.json").exists()
    resumed = run(TrainParams(project_dir=student_project.root, resume=run_id), events=Events(), cancel=CancelToken())
    assert resumed.steps == 6
    assert resumed.final_loss == pytest.approx(reference.final_loss, abs=1e-3)
    assert [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]


def _failing_second_checkpoint(monkeypatch, error):
    import safetensors.torch

    real = safetensors.torch.save_file
    calls = {"n": 0}

    def save_file(tensors, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            real(tensors, path, *args, **kwargs)  # half the checkpoint is on disk when it fails
            raise error
        return real(tensors, path, *args, **kwargs)

    monkeypatch.setattr("safetensors.torch.save_file", save_file)


def _only_run(project):
    return next(p for p in project.runs_dir.iterdir() if p.is_dir())


def test_cancel_during_a_checkpoint_write_keeps_the_previous_checkpoint(student_project, qa_items_file, monkeypatch):
    _failing_second_checkpoint(monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        _train(student_project, qa_items_file)
    run_dir = _only_run(student_project)
    assert latest_checkpoint(run_dir).name == "step-00000002"
    assert not list((run_dir / "checkpoints").glob(".tmp-*"))
    monkeypatch.undo()
    resumed = run(TrainParams(project_dir=student_project.root, resume=run_dir.name), events=Events(),
                  cancel=CancelToken())
    assert resumed.steps == 6 and read_json(run_dir / "summary.json")["status"] == "complete"


def test_disk_full_is_a_clear_error_and_the_last_checkpoint_stays(student_project, qa_items_file, monkeypatch):
    _failing_second_checkpoint(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(TrainError, match="disk is full"):
        _train(student_project, qa_items_file)
    run_dir = _only_run(student_project)
    assert latest_checkpoint(run_dir).name == "step-00000002"
    assert (latest_checkpoint(run_dir) / "trainable.safetensors").is_file()
    assert latest_complete_run(student_project) is None


def test_resume_refuses_changed_items(student_project, qa_items_file):
    _train_until_cancelled(student_project, qa_items_file, 2)
    write_items(qa_items_file, [qa_item(sample_qa()[0]) | {"id": "new"}])
    with pytest.raises(TrainError, match="items changed"):
        run(TrainParams(project_dir=student_project.root, resume=_only_run(student_project).name),
            events=Events(), cancel=CancelToken())


def test_cli_trains_and_refuses_to_resume_a_complete_run(student_project, qa_items_file, capsys):
    from doctune.core.cli import main

    code = main(["train", "-p", str(student_project.root), "--items", str(qa_items_file), "--max-steps", "2",
                 "--batch-tokens", "256", "--events", "jsonl"])
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and events[-1]["event"] == "done"
    assert [e["step"] for e in events if e["event"] == "metric"] == [1, 2]
    run_id = events[-1]["run_id"]
    assert main(["train", "-p", str(student_project.root), "--resume", run_id, "--events", "jsonl"]) == 1
    assert "already complete" in json.loads(capsys.readouterr().out.splitlines()[-1])["message"]


def test_gradient_checkpointing_gives_the_same_losses(student_project, qa_items_file):
    plain = RecordingSink()
    _train(student_project, qa_items_file, plain, max_steps=2)
    recomputed = RecordingSink()
    _train(student_project, qa_items_file, recomputed, max_steps=2, gradient_checkpointing=True)
    assert [m["loss"] for m in recomputed.of("metric")] == pytest.approx([m["loss"] for m in plain.of("metric")],
                                                                         abs=1e-4)


def test_a_new_run_beside_an_interrupted_one_says_how_to_resume_it(student_project, qa_items_file):
    _train_until_cancelled(student_project, qa_items_file, 3)
    interrupted = _only_run(student_project).name
    sink = RecordingSink()
    _train(student_project, qa_items_file, sink, max_steps=1)
    mentions = [w for w in sink.of("warning") if w.get("run_id") == interrupted]
    assert len(mentions) == 1 and "interrupted at step 3" in mentions[0]["message"]
    assert f"doctune train --resume {interrupted}" in mentions[0]["message"]


def test_a_really_full_disk_is_a_clear_error_naming_the_space_to_free(tmp_path, tiny_model, qa_items_file):
    from small_disk import fill, small_disk

    from doctune.core.project import Project

    with small_disk(tmp_path / "disk", size_kb=30_000) as disk:
        project = Project.create(disk / "p")
        project.config.student.model = str(tiny_model("qwen2"))
        project.config.train.replay_fraction = 0.0
        project.save()
        fill(disk, leave_bytes=200_000)
        with pytest.raises(TrainError, match=r"the disk is full at .*; free \d+ MB\.") as caught:
            _train(project, qa_items_file)
        assert "--resume" in str(caught.value)
