"""The whole export of a training run: merge, GGUF formats, verification, manifest, Modelfile."""
from __future__ import annotations

import json

import pytest

from doctune.core.cli import main
from doctune.core.events import Cancelled, CancelToken, Events, RecordingSink
from doctune.core.export import ExportParams, ready_gguf, run
from doctune.core.export.folder import read_manifest


def test_export_writes_verified_files_modelfile_and_usage(project, make_run, capsys):
    run_dir = make_run(project, "qwen2")
    code = main(["export", "-p", str(project.root), "--run", "run-1", "--formats", "f16,q8_0,q4_k_m"])
    assert code == 0
    out = capsys.readouterr().out
    export_dir = run_dir / "export"
    manifest = read_manifest(export_dir)
    assert manifest["schema_version"] == 1 and manifest["run_id"] == "run-1" and manifest["finished_at"]
    for fmt in ("f16", "q8_0", "q4_k_m"):
        entry = manifest["files"][fmt]
        assert entry["ready"] and (export_dir / entry["file"]).stat().st_size == entry["bytes"]
    assert manifest["files"]["f16"]["verification"]["checks"]["top1"]["agreement"] >= 0.99
    assert json.loads((export_dir / "verification.json").read_text())["files"][0]["passed"]
    assert (export_dir / "verification.txt").read_text().count("READY") == 3
    modelfile = (export_dir / "Modelfile").read_text()
    assert "FROM ./doctune-run-1-q8_0.gguf" in modelfile and "<|im_start|>" in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile
    assert "ollama create" in out and "llama-server" in out and "lms import" in out
    assert ready_gguf(project, fmt="q8_0") == export_dir / "doctune-run-1-q8_0.gguf"
    assert ready_gguf(project, "run-1", "q4_k_m") == export_dir / "doctune-run-1-q4_k_m.gguf"


def test_the_merge_changes_the_weights_and_is_reused(project, make_run, tiny_model):
    from safetensors.numpy import load_file

    make_run(project, "llama")
    sink = RecordingSink()
    result = run(ExportParams(project_dir=project.root, formats=["q8_0"]), events=Events(sink), cancel=CancelToken())
    assert result.ready == {"q8_0": True} and not (result.export_dir / "doctune-run-1-f16.gguf").exists()
    merged = load_file(result.export_dir / "merged" / "model.safetensors")
    base = load_file(tiny_model("llama") / "model.safetensors")
    key = "model.layers.0.self_attn.q_proj.weight"
    assert abs(merged[key] - base[key]).max() > 1e-3
    stages = {event["stage"] for event in sink.events}
    assert {"export.merge", "export.write", "export.quantize", "export.verify"} <= stages
    assert any(e.get("unit") == "bytes" for e in sink.of("progress"))
    gguf = result.files["q8_0"]
    mtime = gguf.stat().st_mtime_ns
    again = run(ExportParams(project_dir=project.root, formats=["q8_0"]), events=Events(), cancel=CancelToken())
    assert again.ready == {"q8_0": True} and gguf.stat().st_mtime_ns == mtime


def test_a_file_failing_verification_is_never_ready(project, make_run, capsys):
    make_run(project, "qwen2")
    project.config.export.min_top1 = {"f16": 0.99, "q4_k_m": 1.01}
    project.save()
    code = main(["export", "-p", str(project.root), "--formats", "f16,q4_k_m"])
    assert code == 2
    manifest = read_manifest(project.runs_dir / "run-1" / "export")
    assert manifest["files"]["f16"]["ready"] and not manifest["files"]["q4_k_m"]["ready"]
    assert "next-token agreement" in manifest["files"]["q4_k_m"]["verification"]["problems"][0]
    assert ready_gguf(project, fmt="q4_k_m") is None
    assert "FAILED" in (project.runs_dir / "run-1" / "export" / "verification.txt").read_text()


def test_an_interrupted_export_leaves_nothing_half_ready(project, make_run):
    make_run(project, "qwen2")
    cancel = CancelToken()

    def cancel_when_quantizing(event):
        if event["stage"] == "export.quantize":
            cancel.cancel()

    with pytest.raises(Cancelled):
        run(ExportParams(project_dir=project.root, formats=["f16", "q8_0", "q4_k_m"]),
            events=Events(cancel_when_quantizing), cancel=cancel)
    export_dir = project.runs_dir / "run-1" / "export"
    files = read_manifest(export_dir)["files"]
    assert set(files) <= {"f16", "q8_0"}  # nothing after the cancel point was even listed
    assert ready_gguf(project, fmt="q4_k_m") is None
    assert not list(export_dir.glob("*.tmp"))
    resumed = run(ExportParams(project_dir=project.root, formats=["f16", "q8_0", "q4_k_m"]),
                  events=Events(), cancel=CancelToken())
    assert resumed.all_ready
