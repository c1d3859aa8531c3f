"""The student's base model exported once, verified, cached and found again."""
from __future__ import annotations

from doctune.core.events import Events, RecordingSink
from doctune.core.export import base_gguf, ready_gguf
from doctune.core.export.folder import read_manifest


def test_base_gguf_is_verified_cached_and_reused(project, tiny_model):
    project.config.student.model = str(tiny_model("qwen2"))
    project.save()
    sink = RecordingSink()
    path = base_gguf(project, "q8_0", events=Events(sink))
    assert path.is_file() and path.parent.parent == project.cache_dir / "base"
    entry = read_manifest(path.parent)["files"]["q8_0"]
    assert entry["ready"] and entry["verification"]["checks"]["tokenizer"]["passed"]
    assert entry["verification"]["checks"]["top1"]["agreement"] >= 0.9
    assert not (path.parent / "base-f16.gguf").exists()  # the intermediate file is not kept
    assert (path.parent / "verification.txt").read_text().count("READY") == 1
    mtime = path.stat().st_mtime_ns
    assert base_gguf(project, "q8_0") == path and path.stat().st_mtime_ns == mtime
    assert ready_gguf(project) is None  # no tuned export yet


def test_a_second_format_keeps_the_first(project, tiny_model):
    project.config.student.model = str(tiny_model("llama"))
    project.save()
    q4 = base_gguf(project, "q4_k_m")
    q8 = base_gguf(project, "q8_0")
    files = read_manifest(q8.parent)["files"]
    assert files["q4_k_m"]["ready"] and files["q8_0"]["ready"] and q4.is_file()


def test_concurrent_requests_export_once(project, tiny_model):
    from concurrent.futures import ThreadPoolExecutor

    from doctune.core.events import RecordingSink

    project.config.student.model = str(tiny_model("mistral"))
    project.save()
    sinks = [RecordingSink(), RecordingSink()]
    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(lambda sink: base_gguf(project, "q8_0", events=Events(sink)), sinks))
    assert paths[0] == paths[1] and paths[0].is_file()
    writes = [e for sink in sinks for e in sink.events if e["stage"] == "export.write" and e["event"] == "log"
              and e["message"].startswith("Writing")]
    assert len(writes) == 1
    assert read_manifest(paths[0].parent)["files"]["q8_0"]["ready"]
