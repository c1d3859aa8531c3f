"""``doctune synth`` as a process: SIGKILL and resume, API key secrecy, refused endpoints, dry run, export."""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from project_helpers import ingest
from synth_helpers import per_chunk_items, sample_docs, use_endpoint

from doctune.core.items import items_path, load_training_items
from doctune.core.project import Project


def doctune(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "doctune.core", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}, **kwargs)


def finish(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def qa_project(root: Path, base_url: str, docs: int, per_chunk: int, **teacher) -> Project:
    project = Project.create(root)
    ingest(project, sample_docs(docs))
    use_endpoint(project, base_url, **teacher)
    per_chunk_items(project.config.synth, {"qa": 1.0}, per_chunk)
    project.save()
    return project


def item_contents(project) -> dict[str, list]:
    return {item.id: [m.content for m in item.messages] for item in load_training_items(project)}


@pytest.mark.slow
def test_sigkill_then_rerun_equals_an_uninterrupted_run(tmp_path, fault_server):
    server = fault_server(delay_s=0.15)
    killed = qa_project(tmp_path / "killed", server.base_url, docs=6, per_chunk=3, concurrency=2)
    whole = qa_project(tmp_path / "whole", server.base_url, docs=6, per_chunk=3, concurrency=2)

    process = doctune("synth", "-p", str(killed.root), "--events", "jsonl")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        path = items_path(killed)
        if path.exists() and path.read_bytes().count(b"\n") >= 4:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    written = items_path(killed).read_bytes().count(b"\n")
    assert 4 <= written < 21, "the kill must land in the middle of the run"
    with open(items_path(killed), "ab") as handle:  # what a kill during a write leaves behind
        handle.write(b'{"schema_version": 1, "id": "torn-rec')

    assert finish(doctune("synth", "-p", str(killed.root)))[0] == 0
    assert finish(doctune("synth", "-p", str(whole.root)))[0] == 0

    lines = items_path(killed).read_bytes().splitlines(keepends=True)
    assert all(line.endswith(b"\n") for line in lines)
    ids = [json.loads(line)["id"] for line in lines]
    assert len(ids) == len(set(ids)) == 21
    assert item_contents(killed) == item_contents(whole)


def test_a_second_synth_at_once_is_refused_and_nothing_is_paid_twice(tmp_path, fault_server):
    server = fault_server(delay_s=1.5)  # the first synthesis is still at work while the second starts
    project = qa_project(tmp_path / "p", server.base_url, docs=3, per_chunk=2, concurrency=1)
    first = doctune("synth", "-p", str(project.root), "--events", "jsonl")
    deadline = time.monotonic() + 60
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.requests, "the first synthesis must be under way"
    code, _, err = finish(doctune("synth", "-p", str(project.root)))
    assert code == 1 and "Another 'doctune synth' is already generating" in err and "Traceback" not in err
    code, out, _ = finish(first)
    planned = json.loads(out.splitlines()[-1])["planned"]
    assert code == 0 and planned >= 6
    ids = [json.loads(line)["id"] for line in items_path(project).read_text().splitlines()]
    assert len(ids) == len(set(ids)) == planned
    assert len(server.requests) == planned  # every item was asked for once
    dry = finish(doctune("synth", "--dry-run", "-p", str(project.root)))  # a dry run never needs the lock
    assert dry[0] == 0


def test_sigterm_stops_requests_in_flight_within_seconds(tmp_path, fault_server):
    server = fault_server(fault=lambda body, attempt: ("sleep", 60))
    project = qa_project(tmp_path / "p", server.base_url, docs=2, per_chunk=2, concurrency=2, timeout_s=120.0)
    process = doctune("synth", "-p", str(project.root), "--events", "jsonl")
    deadline = time.monotonic() + 60
    while len(server.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(server.requests) >= 2, "two requests must be in flight"
    process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    code, out, err = finish(process, timeout=30)
    assert time.monotonic() - started < 5.0
    assert code == 130 and json.loads(out.splitlines()[-1])["event"] == "cancelled", err
    assert "Traceback" not in err


def test_api_key_stays_out_of_files_and_events(tmp_path, fault_server):
    key = "sk-doctune-test-" + secrets.token_hex(12)
    server = fault_server(api_key=key)
    project = qa_project(tmp_path / "p", server.base_url, docs=2, per_chunk=1, api_key_env="DOCTUNE_TEST_TEACHER_KEY")

    code, out, err = finish(doctune("synth", "-p", str(project.root), "--events", "jsonl",
                                    env={"DOCTUNE_TEST_TEACHER_KEY": key}))
    assert code == 0, err
    assert server.auth_headers and all(header == f"Bearer {key}" for header in server.auth_headers)
    assert json.loads(out.splitlines()[-1])["generated"] == 2
    assert key not in out and key not in err
    for file in project.root.rglob("*"):
        if file.is_file():
            assert key.encode() not in file.read_bytes(), file


def test_wrong_key_is_a_recorded_failure_not_a_leak(tmp_path, fault_server):
    key = "sk-doctune-test-" + secrets.token_hex(12)
    server = fault_server(api_key="another-key")
    project = qa_project(tmp_path / "p", server.base_url, docs=1, per_chunk=1, api_key_env="DOCTUNE_TEST_TEACHER_KEY")
    code, out, err = finish(doctune("synth", "-p", str(project.root), "--events", "jsonl",
                                    env={"DOCTUNE_TEST_TEACHER_KEY": key}))
    assert code == 2
    assert "HTTP 401" in (project.synth_dir / "failures.jsonl").read_text()
    assert key not in out + err
    assert all(key.encode() not in f.read_bytes() for f in project.root.rglob("*") if f.is_file())


def test_remote_endpoint_refused_without_permission_and_always_offline(tmp_path):
    project = qa_project(tmp_path / "p", "http://203.0.113.7:8000/v1", docs=1, per_chunk=1)
    code, out, err = finish(doctune("synth", "-p", str(project.root), "--events", "jsonl"))
    event = json.loads(out.splitlines()[-1])
    assert code == 1 and event["fatal"] and "allow_remote_teacher" in event["message"]

    project.config.privacy.allow_remote_teacher = True
    project.config.privacy.offline = True
    project.save()
    code, out, err = finish(doctune("synth", "-p", str(project.root), "--events", "jsonl"))
    assert code == 1 and "offline" in json.loads(out.splitlines()[-1])["message"]
    assert not items_path(project).exists()


def test_dry_run_estimates_without_calling_the_teacher(tmp_path, fault_server):
    server = fault_server()
    project = qa_project(tmp_path / "p", server.base_url, docs=2, per_chunk=2)
    project.config.synth.recipes = {"qa": 1.0, "focal": 1.0}
    project.config.teacher.price_in_per_mtok = 1.0
    project.config.teacher.price_out_per_mtok = 2.0
    project.save()
    code, out, err = finish(doctune("synth", "-p", str(project.root), "--dry-run", "--events", "jsonl"))
    assert code == 0, err
    estimate = json.loads(out.splitlines()[-1])["estimate"]
    assert estimate["items"] == 8 and estimate["calls"] == 4 * 1 + 4 * 2
    assert estimate["seconds"] is None and estimate["cost"] > 0 and estimate["priced"]
    assert server.requests == []

    assert finish(doctune("teacher", "test", "-p", str(project.root)))[0] == 0
    code, out, err = finish(doctune("synth", "-p", str(project.root), "--dry-run", "--events", "jsonl"))
    assert json.loads(out.splitlines()[-1])["estimate"]["seconds"] > 0


def test_an_amplification_target_sets_the_amount_and_the_estimate_shows_it(tmp_path, fault_server):
    server = fault_server()
    project = qa_project(tmp_path / "p", server.base_url, docs=2, per_chunk=2)
    toml = (project.root / "doctune.toml").read_bytes()

    def estimate(*options: str) -> dict:
        code, out, err = finish(doctune("synth", "-p", str(project.root), "--dry-run", "--events", "jsonl", *options))
        assert code == 0, err
        return json.loads(out.splitlines()[-1])["estimate"]

    small = estimate("--amplification", "4", "--recipes", "qa=1,focal=1")
    large = estimate("--amplification", "16", "--recipes", "qa=1,focal=1")
    for figures, target in ((small, 4), (large, 16)):
        assert figures["target_amplification"] == target and figures["source_tokens"] > 0
        assert 0.5 * target <= figures["amplification"] <= 2 * target  # whole items per chunk: near, not exact
        assert figures["disk_bytes"] > figures["synthetic_tokens"] * 3  # the text, and each record's fields
    assert large["items"] > 2 * small["items"] and large["disk_bytes"] > small["disk_bytes"]
    weighted = estimate("--amplification", "16", "--recipes", "qa=3,focal=1")
    assert weighted["items"] != large["items"]  # the weights share the target out differently
    assert (project.root / "doctune.toml").read_bytes() == toml  # options, not a rewritten project file
    assert server.requests == []


def test_raising_the_amplification_only_adds_tasks(tmp_path):
    from doctune.core.config import SynthSettings
    from doctune.core.synth.recipes import plan_tasks

    chunks = [{"id": f"c{i}", "doc_id": "d", "ordinal": i, "text": "Some text. " * 40, "n_tokens": 120}
              for i in range(4)]
    low = plan_tasks(chunks, {"qa": 1.0, "focal": 1.0}, SynthSettings(amplification=4))
    high = plan_tasks(chunks, {"qa": 1.0, "focal": 1.0}, SynthSettings(amplification=32))
    assert {task.id for task in low} < {task.id for task in high}  # a later, larger target extends the first


def test_export_formats(tmp_path, fault_server):
    server = fault_server()
    project = qa_project(tmp_path / "p", server.base_url, docs=2, per_chunk=1)
    project.config.synth.recipes = {"qa": 1.0, "rephrase": 1.0}
    project.config.synth.min_document_chars = 20
    project.save()
    assert finish(doctune("synth", "-p", str(project.root)))[0] == 0
    for fmt, key in (("openai", "messages"), ("sharegpt", "conversations")):
        out = tmp_path / f"{fmt}.jsonl"
        code, _, err = finish(doctune("synth", "export", "-p", str(project.root), "--format", fmt, "-o", str(out)))
        assert code == 0, err
        records = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(records) == 4
        assert sum(key in r for r in records) == 2 and sum("text" in r for r in records) == 2
    sharegpt = [json.loads(line) for line in (tmp_path / "sharegpt.jsonl").read_text().splitlines()]
    turns = next(r["conversations"] for r in sharegpt if "conversations" in r)
    assert [t["from"] for t in turns] == ["human", "gpt"]


def test_the_done_line_reports_how_evenly_the_documents_are_covered(tmp_path, fault_server):
    server = fault_server()
    project = qa_project(tmp_path / "p", server.base_url, docs=3, per_chunk=2)
    code, out, err = finish(doctune("synth", "-p", str(project.root)))
    assert code == 0, err
    done = next(line for line in (out + err).splitlines() if "written to synth/items.jsonl" in line)
    assert "Per document the material holds" in done and "least covered:" in done, done
