"""Bad inputs give clear errors and never a file marked ready."""
from __future__ import annotations

import json
import shutil

import pytest

from doctune.core.cli import main
from doctune.core.events import CancelToken, Events
from doctune.core.export import ExportError, ExportParams, UnsupportedModelError, ready_gguf, run
from doctune.core.export.folder import read_manifest
from doctune.core.export.gguf import write_gguf


@pytest.fixture
def model_copy(tiny_model, tmp_path):
    def copy(family: str = "qwen2"):
        target = tmp_path / f"{family}-copy"
        shutil.copytree(tiny_model(family), target)
        return target

    return copy


def test_unsupported_architecture_names_the_supported_ones(model_copy, tmp_path):
    folder = model_copy()
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["GPTNeoXForCausalLM"]
    (folder / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out.gguf"
    with pytest.raises(UnsupportedModelError) as error:
        write_gguf(folder, out)
    assert "GPTNeoXForCausalLM" in str(error.value) and "LlamaForCausalLM, MistralForCausalLM" in str(error.value)
    assert not out.exists() and not list(tmp_path.glob(".out.gguf*"))


def test_missing_tokenizer_files(model_copy, tmp_path):
    folder = model_copy()
    (folder / "tokenizer.json").unlink()
    with pytest.raises(UnsupportedModelError, match="no tokenizer.json"):
        write_gguf(folder, tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()


def test_corrupt_safetensors(model_copy, tmp_path):
    folder = model_copy()
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ExportError, match="model.safetensors"):
        write_gguf(folder, tmp_path / "out.gguf")
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".out.gguf*"))


def test_unwritable_destination(model_copy, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(ExportError, match="Cannot write"):
        write_gguf(model_copy(), blocker / "out.gguf")


def test_sentencepiece_style_tokenizer_is_refused(model_copy, tmp_path):
    folder = model_copy("llama")
    data = json.loads((folder / "tokenizer.json").read_text())
    data["model"]["byte_fallback"] = True
    (folder / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(UnsupportedModelError, match="SentencePiece"):
        write_gguf(folder, tmp_path / "out.gguf")


def test_unknown_pre_tokenizer_is_an_error_unless_a_fallback_is_set(model_copy, tmp_path):
    from doctune.core.events import RecordingSink

    folder = model_copy("llama")  # transformers 5 imposes its own split rules on qwen2 tokenizers
    data = json.loads((folder / "tokenizer.json").read_text())
    data["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "WhitespaceSplit"}, {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                                      "use_regex": False}]}
    (folder / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(UnsupportedModelError, match="pretokenizer_fallback"):
        write_gguf(folder, tmp_path / "out.gguf")
    sink = RecordingSink()
    write_gguf(folder, tmp_path / "out.gguf", events=Events(sink), fallback_pre="gpt-2")
    assert (tmp_path / "out.gguf").is_file()
    assert any("gpt-2" in w["message"] for w in sink.of("warning"))


def test_corrupt_adapter_fails_the_run_with_nothing_ready(project, make_run, capsys):
    run_dir = make_run(project, "qwen2")
    adapter = run_dir / "adapter" / "adapter_model.safetensors"
    adapter.write_bytes(b"\x00" * 64)
    code = main(["export", "-p", str(project.root), "--formats", "q8_0"])
    assert code == 1
    assert "adapter" in capsys.readouterr().err.lower()
    assert ready_gguf(project) is None and not (run_dir / "export" / "merged").exists()


def test_unfinished_run_and_unwritable_export_folder(project, make_run):
    run_dir = make_run(project, "qwen2")
    (run_dir / "export").write_text("a file where the export folder should be")
    with pytest.raises(ExportError, match="export folder"):
        run(ExportParams(project_dir=project.root, run_id="run-1"), events=Events(), cancel=CancelToken())
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "running"}))
    with pytest.raises(ExportError, match="has not finished"):
        run(ExportParams(project_dir=project.root, run_id="run-1"), events=Events(), cancel=CancelToken())
    with pytest.raises(ExportError, match="no training run 'nope'"):
        run(ExportParams(project_dir=project.root, run_id="nope"), events=Events(), cancel=CancelToken())
    assert ready_gguf(project) is None and read_manifest(run_dir / "export") is None


def test_unknown_format_is_refused_before_any_work(project):
    with pytest.raises(ExportError, match="Unknown GGUF format .q9_9."):
        ExportParams(project_dir=project.root, formats=["q9_9"])


def test_a_format_that_crashes_llama_cpp_fails_alone_with_a_plain_reason(tiny_model, tmp_path, monkeypatch):
    """On processors where llama.cpp dies on quantized files, export marks them failed and finishes F16."""
    from isolated_targets import crash_on_quantized

    from doctune.core.config import ExportSettings
    from doctune.core.export import verify
    from doctune.core.export.folder import export_folder

    monkeypatch.setattr(verify, "_run_checks", crash_on_quantized)
    recorder = []
    manifest = export_folder(tiny_model("qwen2"), tmp_path / "out", ["f16", "q8_0", "q4_k_m"], stem="tiny",
                             settings=ExportSettings(), events=Events(recorder.append), cancel=CancelToken())
    files = manifest.to_data()["files"]
    assert files["f16"]["ready"] is True
    for fmt in ("q8_0", "q4_k_m"):
        assert files[fmt]["ready"] is False and files[fmt]["verification"]["crashed"] is True
        problem = files[fmt]["verification"]["problems"][0]
        assert problem.startswith(f"llama.cpp crashed while evaluating this file on this computer: tiny-{fmt}.gguf")
        assert "SIGSEGV" in problem
    errors = [event for event in recorder if event["event"] == "error"]
    assert len(errors) == 2 and all("failed verification" in event["message"] for event in errors)
    assert "problem: llama.cpp crashed" in (tmp_path / "out" / "verification.txt").read_text()


def test_a_full_disk_during_the_merge_says_how_much_to_free(tmp_path, make_run):
    from small_disk import fill, small_disk

    from doctune.core.project import Project

    with small_disk(tmp_path / "disk", size_kb=60_000) as disk:
        project = Project.create(disk / "p")
        run_dir = make_run(project, "qwen2")
        fill(disk, leave_bytes=300_000)
        with pytest.raises(ExportError) as caught:
            run(ExportParams(project_dir=project.root, run_id="run-1", formats=["f16"]), events=Events(),
                cancel=CancelToken())
        message = str(caught.value)
        assert "the disk is full at" in message and "MB." in message and str(run_dir) in message
        assert ready_gguf(project) is None
        assert not (run_dir / "export" / ".merged.tmp").exists()


def test_a_format_that_cannot_be_written_is_recorded_with_its_reason(tiny_model, tmp_path, monkeypatch):
    """The export stops at a file it cannot write, and its manifest says which and why (the window shows it after
    a restart, when the job's message is gone)."""
    from doctune.core.config import ExportSettings
    from doctune.core.export import folder
    from doctune.core.export.folder import export_folder

    def no_quantizer(f16, out, fmt, events):
        raise ExportError("This llama.cpp cannot quantize to Q8_0.", "Install a newer llama-cpp-python.")

    monkeypatch.setattr(folder, "_quantize", no_quantizer)
    with pytest.raises(ExportError, match="cannot quantize"):
        export_folder(tiny_model("qwen2"), tmp_path / "out", ["f16", "q8_0", "q4_k_m"], stem="tiny",
                      settings=ExportSettings(), events=Events(), cancel=CancelToken())
    manifest = read_manifest(tmp_path / "out")
    assert manifest["files"]["f16"]["ready"] is True and "q4_k_m" not in manifest["files"]
    assert manifest["files"]["q8_0"] == {"file": "tiny-q8_0.gguf", "ready": False,
                                         "error": "This llama.cpp cannot quantize to Q8_0."}
    assert manifest["formats"] == ["f16", "q8_0", "q4_k_m"]
