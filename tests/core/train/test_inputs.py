"""Bad inputs are refused in plain words, before any model loads."""
from __future__ import annotations

import json

import pytest

from doctune.core.events import CancelToken, Events
from doctune.core.train import TrainError, TrainParams, choose_placement, run
from doctune.core.train.device import check_qlora
from doctune.core.train.student import resolve_student


def test_auto_placement_on_this_cpu_machine_is_cpu_fp32():
    placement = choose_placement("auto", "auto")
    assert (placement.device, placement.dtype) == ("cpu", "fp32")


@pytest.mark.parametrize("device,dtype,words", [
    ("cuda", "auto", "no CUDA GPU"), ("mps", "auto", "MPS is not available"), ("cpu", "fp16", "needs a CUDA GPU"),
])
def test_unsupported_device_or_dtype_is_a_clear_error(device, dtype, words):
    with pytest.raises(TrainError, match=words):
        choose_placement(device, dtype)


def test_qlora_without_cuda_is_a_clear_error():
    with pytest.raises(TrainError, match="QLoRA .* needs a CUDA GPU"):
        check_qlora(choose_placement("cpu", "fp32"))


def test_bad_override_fails_before_the_student_is_looked_at(project, qa_items_file):
    params = TrainParams(project_dir=project.root, items_file=qa_items_file, student={"model": "/does/not/exist"},
                         train={"device": "cuda"})
    with pytest.raises(TrainError, match="cuda"):
        run(params, events=Events(), cancel=CancelToken())


def test_missing_student_folder(tmp_path):
    with pytest.raises(TrainError, match="does not exist"):
        resolve_student(str(tmp_path / "nowhere" / "model"))


def test_folder_without_config_is_not_a_model(tmp_path):
    with pytest.raises(TrainError, match="no config.json"):
        resolve_student(str(tmp_path))


def test_a_model_that_is_not_a_causal_lm_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    with pytest.raises(TrainError, match="not a causal language model"):
        resolve_student(str(tmp_path))


def test_pickle_weights_only_are_refused(tmp_path, tiny_model):
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "config.json").write_bytes((tiny_model("qwen2") / "config.json").read_bytes())
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(TrainError, match="no .safetensors"):
        resolve_student(str(folder))


def test_hub_id_offline_and_not_cached_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(TrainError, match="not in the Hugging Face cache.*offline"):
        resolve_student("doctune-tests/no-such-model", offline=True)


def test_no_student_configured(project, qa_items_file):
    with pytest.raises(TrainError, match="No student model"):
        run(TrainParams(project_dir=project.root, items_file=qa_items_file), events=Events(), cancel=CancelToken())


def test_missing_items_file(student_project, tmp_path):
    params = TrainParams(project_dir=student_project.root, items_file=tmp_path / "missing.jsonl")
    with pytest.raises(TrainError, match="does not exist"):
        run(params, events=Events(), cancel=CancelToken())


def test_empty_project_has_nothing_to_train(student_project):
    with pytest.raises(TrainError, match="nothing to train on"):
        run(TrainParams(project_dir=student_project.root), events=Events(), cancel=CancelToken())


def test_unwritable_run_folder_fails_before_training(student_project, qa_items_file):
    runs = student_project.runs_dir
    runs.rmdir()
    runs.symlink_to("/proc/self")  # a folder nobody (not even root) can create files in
    with pytest.raises(TrainError, match="Cannot write to the run folder"):
        run(TrainParams(project_dir=student_project.root, items_file=qa_items_file), events=Events(),
            cancel=CancelToken())


def test_cli_reports_a_bad_student_without_traceback(project, qa_items_file, capsys):
    from doctune.core.cli import main

    code = main(["train", "-p", str(project.root), "--items", str(qa_items_file), "--student", "/no/such/folder",
                 "--events", "jsonl"])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 1 and last["event"] == "error" and last["fatal"] and "does not exist" in last["message"]


def test_download_progress_becomes_events_with_size_rate_and_eta():
    from doctune.core.events import RecordingSink
    from doctune.core.hub import progress_bar_class

    sink = RecordingSink()
    bar = progress_bar_class(Events(sink))(total=1000, unit="B", desc="Downloading bytes")
    bar.update(400)
    bar.update(600)
    bar.close()
    last = sink.of("progress")[-1]
    assert (last["done"], last["total"], last["unit"]) == (1000, 1000, "bytes")
    assert last["message"] == "Downloading bytes"
