import json
import os

import pytest

from doctune.core.fsio import AtomicFile, JsonlAppender, atomic_write_json, atomic_write_text, read_jsonl


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "a" / "settings.json"
    atomic_write_json(target, {"x": 1})
    atomic_write_json(target, {"x": 2})
    assert json.loads(target.read_text()) == {"x": 2}
    assert [p.name for p in target.parent.iterdir()] == ["settings.json"]


def test_failed_atomic_file_leaves_old_content_and_no_temp(tmp_path):
    target = tmp_path / "model.bin"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with AtomicFile(target) as tmp:
            tmp.write_text("half written")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_jsonl_reader_skips_torn_last_line_and_appender_repairs_it(tmp_path):
    log = tmp_path / "items.jsonl"
    with JsonlAppender(log) as out:
        out.append({"id": 1})
        out.append({"id": 2})
    with open(log, "ab") as handle:
        handle.write(b'{"id": 3, "text": "cut in the mid')
    assert [r["id"] for r in read_jsonl(log)] == [1, 2]
    with JsonlAppender(log) as out:
        out.append({"id": 4})
    assert [r["id"] for r in read_jsonl(log)] == [1, 2, 4]
    assert log.read_bytes().endswith(b"\n")


def test_read_jsonl_of_missing_file_is_empty(tmp_path):
    assert list(read_jsonl(tmp_path / "none.jsonl")) == []


def test_jsonl_appender_fsyncs(tmp_path, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    with JsonlAppender(tmp_path / "x.jsonl") as out:
        out.append({"a": 1})
    assert calls
