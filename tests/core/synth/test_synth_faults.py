"""Synthesis against a fault-injecting loopback server: retries, failures and filters add up exactly."""
from __future__ import annotations

import json
import time

import pytest
from project_helpers import ingest
from synth_helpers import per_chunk_items, sample_docs, use_endpoint

from doctune.core.events import CancelToken, Events, RecordingSink
from doctune.core.fsio import read_jsonl
from doctune.core.items import failures_path, load_training_items
from doctune.core.synth import SynthParams, run

SAME_ANSWER = json.dumps({"question": "Is a harbour ever mentioned?", "answer": "Yes, it is.", "explanation": "It is."})


def _title(body: dict) -> str:
    first_user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    return first_user.split("\n", 1)[0].lower()


def scripted(body: dict, attempt: int):
    title = _title(body)
    if "vellmora" in title and attempt == 1:
        return ("status", 429, {"Retry-After": "1"})
    if "quintrel" in title and attempt <= 2:
        return ("status", 500)
    if "oswin" in title and attempt == 1:
        return ("sleep", 2.5)
    if "lanternfall" in title and attempt == 1:
        return ("drop",)
    if "skarnwick" in title and attempt == 1:
        return ("malformed",)
    if "brindlemoor" in title:
        return ("status", 503)
    if "zorvanite" in title or "tallowmere" in title:
        return ("text", SAME_ANSWER)
    if "threnwick" in title:
        return ("text", "I would rather not answer in JSON.")
    return None


def test_faults_are_retried_recorded_and_counted(project, fault_server):
    ingest(project, sample_docs(9))
    server = fault_server(fault=scripted)
    use_endpoint(project, server.base_url, timeout_s=1.0, max_retries=3, concurrency=4)
    per_chunk_items(project.config.synth, {"qa": 1.0}, 1)
    project.save()
    sink = RecordingSink()

    result = run(SynthParams(project_dir=project.root), events=Events(sink), cancel=CancelToken())

    assert result.planned == 10  # nine documents; the pudding recipe is two chunks
    assert (result.generated, result.failed, result.filtered) == (6, 3, 1)
    assert result.generated + result.failed + result.filtered == result.planned
    assert result.failed_by_reason == {"teacher error": 2, "unusable reply": 1}  # a reply that is not JSON failed
    assert result.filtered_by_reason == {"duplicate": 1}
    items = load_training_items(project)
    assert len(items) == 6 and len({item.id for item in items}) == 6
    outcomes = list(read_jsonl(failures_path(project)))
    assert sorted(o["outcome"] for o in outcomes) == ["failed", "failed", "failed", "filtered"]
    assert "HTTP 503" in next(o for o in outcomes if o["reason"] == "teacher error")["detail"]
    # Retry-After: 1 was honoured although the backoff alone would wait 10 ms.
    vellmora = [i for i, body in enumerate(server.requests) if "vellmora" in _title(body)]
    assert len(vellmora) == 2
    # every request of the always-failing document was tried 1 + max_retries times; the bad-JSON one got one repair
    assert sum("brindlemoor" in _title(b) for b in server.requests) == 2 * 4
    # the non-JSON reply got one repair request, then the call was asked once more (another seed), with its repair
    threnwick = [b for b in server.requests if "threnwick" in _title(b)]
    assert len(threnwick) == 4 and "JSON object" in threnwick[1]["messages"][-1]["content"]
    assert threnwick[0]["seed"] != threnwick[2]["seed"]
    progress = sink.of("progress")
    assert progress[-1]["done"] == 10 and progress[-1]["failed"] == 3 and progress[-1]["filtered"] == 1
    assert progress[-1]["tokens_out"] > 0

    again = run(SynthParams(project_dir=project.root), events=Events(), cancel=CancelToken())
    assert (again.already_done, again.generated, again.failed, again.filtered) == (7, 0, 3, 0)
    assert len(load_training_items(project)) == 6


def test_unreadable_replies_are_failed_calls_that_a_rerun_retries(project, fault_server):
    """Malformed JSON and schema-violating replies are not filtered away: once the teacher is healthy again, the
    re-run writes every item."""
    ingest(project, sample_docs(4))
    broken = {"on": True}

    def sometimes_broken(body, attempt):
        if not broken["on"]:
            return None
        if "quintrel" in _title(body):
            return ("text", '{"question": "What?", "answer": 42}')  # well-formed JSON of the wrong shape
        return ("text", '{"question": "What is the Quintrel', )  # cut off: not JSON

    server = fault_server(fault=sometimes_broken)
    use_endpoint(project, server.base_url, structured_output="off")
    per_chunk_items(project.config.synth, {"qa": 1.0}, 1)
    project.save()

    first = run(SynthParams(project_dir=project.root), events=Events(), cancel=CancelToken())
    assert (first.generated, first.failed, first.filtered) == (0, first.planned, 0)
    assert first.failed_by_reason == {"unusable reply": first.planned}
    assert all(o["outcome"] == "failed" for o in read_jsonl(failures_path(project)))

    broken["on"] = False
    again = run(SynthParams(project_dir=project.root), events=Events(), cancel=CancelToken())
    assert (again.already_done, again.generated, again.failed) == (0, first.planned, 0)
    assert len(load_training_items(project)) == first.planned


def test_schema_filtered_outcomes_of_older_versions_are_retried(project, fault_server):
    from doctune.core.fsio import JsonlAppender
    from doctune.core.synth.step import plan

    ingest(project, sample_docs(2))
    server = fault_server()
    use_endpoint(project, server.base_url)
    per_chunk_items(project.config.synth, {"qa": 1.0}, 1)
    project.save()
    tasks = plan(project, SynthParams(project_dir=project.root))
    with JsonlAppender(failures_path(project)) as log:  # what an older version wrote for unreadable replies
        log.append_many([{"schema_version": 1, "id": task.id, "outcome": "filtered", "reason": "schema",
                          "detail": "schema: no JSON object in the reply"} for task in tasks])
    result = run(SynthParams(project_dir=project.root), events=Events(), cancel=CancelToken())
    assert (result.already_done, result.generated) == (0, len(tasks))


def test_retry_after_is_waited_for(project, fault_server):
    ingest(project, sample_docs(1))
    stamps: list[float] = []

    def throttle(body, attempt):
        stamps.append(time.monotonic())
        return ("status", 429, {"Retry-After": "1"}) if attempt == 1 else None

    server = fault_server(fault=throttle)
    use_endpoint(project, server.base_url)
    per_chunk_items(project.config.synth, {"qa": 1.0}, 1)
    project.save()
    result = run(SynthParams(project_dir=project.root), events=Events(), cancel=CancelToken())
    assert result.generated == 1
    assert stamps[1] - stamps[0] >= 0.95


def test_a_full_disk_is_a_clear_error_and_the_rerun_finishes_without_duplicates(tmp_path, fault_server):
    from small_disk import fill, small_disk

    from doctune.core.project import Project
    from doctune.core.synth.step import SynthWriteError

    server = fault_server()
    with small_disk(tmp_path / "disk", size_kb=20_000) as disk:
        project = Project.create(disk / "p")
        ingest(project, sample_docs(4))
        use_endpoint(project, server.base_url)
        per_chunk_items(project.config.synth, {"qa": 1.0}, 3)
        project.save()
        filler = fill(disk, leave_bytes=3_000)
        with pytest.raises(SynthWriteError) as caught:
            run(SynthParams(project_dir=project.root), events=Events(), cancel=CancelToken())
        message = str(caught.value)
        assert f"the disk is full at {project.synth_dir}; free" in message and "MB." in message
        filler.unlink()
        again = run(SynthParams(project_dir=project.root), events=Events(), cancel=CancelToken())
        ids = [item.id for item in load_training_items(project)]
        assert len(ids) == len(set(ids)) == again.planned == again.already_done + again.generated
