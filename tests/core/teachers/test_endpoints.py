"""An endpoint teacher over several real loopback servers: spreading, health, failover, probing, privacy."""
from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fault_server import FaultServer

from doctune.core.config import ConfigError, PrivacySettings, TeacherSettings, parse_config
from doctune.core.teachers import TeacherCallError, TeacherError, endpoints, open_teacher
from doctune.core.teachers.api import ApiTeacher, check_endpoints_allowed

SCHEMA = {"type": "object", "properties": {"question": {"type": "string", "maxLength": 80},
                                           "answer": {"type": "string", "maxLength": 80}},
          "required": ["question", "answer"]}
MESSAGES = [{"role": "user", "content": "Passage:\nThe ferry Grey Tern sails to Ossenby twice a week.\n\nReply as JSON."}]


def dead_url() -> str:
    """An address where nothing listens: every connection is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/v1"


def teacher_over(urls: list[str], **kwargs) -> ApiTeacher:
    options = {"retry_base_s": 0.01, "retry_max_s": 0.05, "max_retries": 3, "timeout_s": 5.0,
               "structured_output": "llama_cpp", "concurrency": 2, **kwargs}
    return ApiTeacher(urls, "test", **options)


def ask_all(teacher: ApiTeacher, count: int, workers: int | None = None) -> list:
    """``count`` different requests from ``teacher.concurrency`` threads, as the synthesis pool sends them."""
    with ThreadPoolExecutor(max_workers=workers or teacher.concurrency) as pool:
        return list(pool.map(lambda seed: teacher.complete(MESSAGES, schema=SCHEMA, max_tokens=64, seed=seed),
                             range(count)))


def test_requests_are_spread_over_the_servers_with_slots_on_each():
    lock = threading.Lock()

    def count_in_flight(server_busy):
        def fault(body, attempt):
            with lock:
                server_busy["now"] += 1
                server_busy["most"] = max(server_busy["most"], server_busy["now"])
            time.sleep(0.05)
            with lock:
                server_busy["now"] -= 1
            return None
        return fault

    first, second = {"now": 0, "most": 0}, {"now": 0, "most": 0}
    with FaultServer(fault=count_in_flight(first)) as a, FaultServer(fault=count_in_flight(second)) as b, \
            teacher_over([a.base_url, b.base_url], concurrency=2) as teacher:
        assert teacher.concurrency == 4
        replies = ask_all(teacher, 16, workers=8)  # more threads than slots: the extra ones wait for a slot
        stats = teacher.endpoint_stats()
    assert all(reply.data for reply in replies) and len(a.requests) + len(b.requests) == 16
    assert len(a.requests) >= 5 and len(b.requests) >= 5, (len(a.requests), len(b.requests))
    assert first["most"] <= 2 and second["most"] <= 2
    assert [s.served for s in stats] == [len(a.requests), len(b.requests)] and all(s.up for s in stats)
    assert teacher.name == "openai:test@127.0.0.1 (2 servers)"


def test_a_server_that_refuses_connections_is_left_out_at_once_and_its_work_moves():
    warnings: list[str] = []
    with FaultServer() as alive, \
            teacher_over([dead_url(), alive.base_url], warn=warnings.append, max_retries=0) as teacher:
        started = time.monotonic()
        replies = ask_all(teacher, 8)
        elapsed = time.monotonic() - started
        stats = teacher.endpoint_stats()
        assert teacher.concurrency == 2  # only the live server's slots
    assert all(reply.data for reply in replies) and len(alive.requests) == 8
    assert not stats[0].up and stats[0].times_down == 1 and stats[0].served == 0 and stats[1].served == 8
    assert teacher.retries == 0 and teacher.moves >= 1 and elapsed < 3  # a move is no retry and waits for nothing
    assert len(warnings) == 1 and "stopped answering" in warnings[0] and "other servers" in warnings[0]


def test_server_errors_take_a_server_out_after_three_in_a_row():
    with FaultServer(fault=lambda body, attempt: ("status", 503)) as sick, FaultServer() as well, \
            teacher_over([sick.base_url, well.base_url], concurrency=1) as teacher:
        replies = [teacher.complete(MESSAGES, schema=SCHEMA, seed=seed) for seed in range(12)]
        stats = teacher.endpoint_stats()
    assert all(reply.data for reply in replies)
    assert len(sick.requests) == 3 and not stats[0].up and stats[0].failed == 3  # then no more requests to it
    assert len(well.requests) == 12


def test_a_busy_server_is_not_taken_out_its_requests_are_retried_elsewhere():
    """429 means the server is there but full: a retry (with backoff, on another server), never a time out."""
    with FaultServer(fault=lambda body, attempt: ("status", 429, {"Retry-After": "0"})) as busy, FaultServer() as idle, \
            teacher_over([busy.base_url, idle.base_url], concurrency=1) as teacher:
        replies = [teacher.complete(MESSAGES, schema=SCHEMA, seed=seed) for seed in range(8)]
        stats = teacher.endpoint_stats()
    assert all(reply.data for reply in replies) and len(idle.requests) == 8
    assert stats[0].up and stats[0].times_down == 0 and len(busy.requests) == teacher.retries >= 3
    assert teacher.moves == 0


def test_requests_in_flight_on_a_server_that_goes_down_move_to_another():
    """Two requests hang on the first server; a third one's connection is dropped there: it is taken out, and
    the hanging two are abandoned and answered by the second server at once (it is slow enough that the six
    requests start as three on each)."""
    def hang_then_drop(body, attempt):
        return ("sleep", 30) if len(first.requests) <= 2 else ("drop",)

    with FaultServer(fault=hang_then_drop) as first, FaultServer(delay_s=0.3) as second, \
            teacher_over([first.base_url, second.base_url], concurrency=3, timeout_s=60.0) as teacher:
        started = time.monotonic()
        replies = ask_all(teacher, 6)
        elapsed = time.monotonic() - started
    assert len(first.requests) == 3 and all(reply.data for reply in replies)
    assert len(second.requests) == 6  # its own three, and the three moved from the first server
    assert elapsed < 5, elapsed
    assert teacher.retries == 0 and teacher.moves == 3


class ShiftedClock:
    """The router's ``time`` module with a monotonic clock the test moves forward: probing waits are timed
    without the test depending on how fast this machine sends the requests before them."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset_s

    def advance(self, seconds: float) -> None:
        self.offset_s += seconds

    def __getattr__(self, name: str):
        return getattr(time, name)


def test_a_server_that_was_down_is_probed_again_and_comes_back(monkeypatch):
    clock = ShiftedClock()
    monkeypatch.setattr(endpoints, "time", clock)
    state = {"sick": True}
    with FaultServer(fault=lambda body, attempt: ("status", 502) if state["sick"] else None) as flaky, \
            FaultServer() as steady, \
            teacher_over([flaky.base_url, steady.base_url], concurrency=1, probe_after_s=30.0,
                         down_after=1) as teacher:
        for seed in range(6):
            teacher.complete(MESSAGES, schema=SCHEMA, seed=seed)
        assert not teacher.endpoint_stats()[0].up and teacher.concurrency == 1
        assert len(flaky.requests) == 1  # taken out at its first failure, not asked again within 30 s
        clock.advance(31)
        teacher.complete(MESSAGES, schema=SCHEMA, seed=100)  # the probe: still failing, moves to the other
        assert len(flaky.requests) == 2 and not teacher.endpoint_stats()[0].up
        state["sick"] = False
        clock.advance(31)
        teacher.complete(MESSAGES, schema=SCHEMA, seed=101)
        assert len(flaky.requests) == 2  # the second time out lasts twice as long
        clock.advance(30)
        replies = [teacher.complete(MESSAGES, schema=SCHEMA, seed=200 + seed) for seed in range(4)]
        stats = teacher.endpoint_stats()
    assert all(reply.data for reply in replies) and len(flaky.requests) > 2
    assert stats[0].up and stats[0].times_down == 2 and stats[0].served >= 1 and teacher.concurrency == 2


def test_when_every_server_is_down_the_call_retries_and_fails_as_with_one():
    with teacher_over([dead_url(), dead_url()], max_retries=2) as teacher:
        with pytest.raises(TeacherCallError, match="after 4 attempts: connection failed"):
            teacher.complete(MESSAGES, schema=SCHEMA)
        assert teacher.retries == 2 and teacher.moves == 1
        assert not any(s.up for s in teacher.endpoint_stats())


def test_every_server_needs_the_consent_when_it_is_not_on_this_machine():
    local, remote = "http://127.0.0.1:8000/v1", "http://203.0.113.9:8000/v1"
    with pytest.raises(TeacherError, match="203.0.113.9 is not on this machine"):
        check_endpoints_allowed([local, remote], PrivacySettings())
    assert check_endpoints_allowed([local, remote], PrivacySettings(allow_remote_teacher=True)) == \
        {local: local, remote: remote}
    with pytest.raises(TeacherError, match="offline"):
        check_endpoints_allowed([local, remote], PrivacySettings(allow_remote_teacher=True, offline=True))


def test_base_urls_are_checked_and_joined_with_base_url():
    settings = TeacherSettings(base_url="http://10.0.0.5:8000/v1",
                               base_urls=["http://10.0.0.6:8000/v1", "http://10.0.0.5:8000/v1/"])
    assert settings.endpoint_urls() == ["http://10.0.0.5:8000/v1", "http://10.0.0.6:8000/v1"]
    assert TeacherSettings(base_urls=[" http://a:1/v1 "]).endpoint_urls() == ["http://a:1/v1"]
    with pytest.raises(ConfigError, match="teacher.base_urls.*'10.0.0.7:8000' is not an http"):
        parse_config({"teacher": {"base_urls": ["http://10.0.0.6:8000/v1", "10.0.0.7:8000"]}})
    with pytest.raises(ConfigError, match="teacher.base_url.*not an http"):
        parse_config({"teacher": {"base_url": "ftp://10.0.0.6/v1"}})


def test_open_teacher_uses_every_server_with_the_key_for_each(project, monkeypatch):
    monkeypatch.setenv("DOCTUNE_KEY_UNDER_TEST", "sk-abc123")
    with FaultServer(api_key="sk-abc123") as a, FaultServer(api_key="sk-abc123") as b:
        teacher_settings = project.config.teacher
        teacher_settings.kind, teacher_settings.model = "openai", "test"
        teacher_settings.base_urls = [a.base_url, b.base_url]
        teacher_settings.api_key_env = "DOCTUNE_KEY_UNDER_TEST"
        teacher_settings.concurrency = 3
        project.save()
        with open_teacher(project) as teacher:
            assert teacher.concurrency == 6 and [e.url for e in teacher.endpoints] == [a.base_url, b.base_url]
            ask_all(teacher, 6)
    assert a.auth_headers and b.auth_headers
    assert set(a.auth_headers) | set(b.auth_headers) == {"Bearer sk-abc123"}


def _doctune(*args: str):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "doctune.core", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})


def _servers_project(project, urls: list[str]):
    settings = project.config.teacher
    settings.kind, settings.model, settings.base_url, settings.base_urls = "openai", "test", "", urls
    settings.max_retries, settings.timeout_s, settings.structured_output = 0, 5.0, "llama_cpp"
    project.save()


def test_teacher_test_reports_each_server_and_names_the_one_that_does_not_answer(project):
    with FaultServer() as a, FaultServer(delay_s=0.2) as b:
        _servers_project(project, [a.base_url, b.base_url])
        both = _doctune("teacher", "test", "-p", str(project.root), "--events", "jsonl")
        assert both.returncode == 0, both.stderr
        metrics = [e for e in map(json.loads, both.stdout.splitlines()) if e.get("event") == "metric"]
        assert [m["endpoint"] for m in metrics] == [a.base_url, b.base_url]
        assert all(m["valid_json"] and m["tokens_per_s"] > 0 for m in metrics)
        assert metrics[1]["latency_s"] >= 0.2 > metrics[0]["latency_s"]
        missing = dead_url()
        _servers_project(project, [a.base_url, missing])
        one_dead = _doctune("teacher", "test", "-p", str(project.root))
    assert one_dead.returncode == 1 and "Traceback" not in one_dead.stderr, one_dead.stderr
    text = " ".join(one_dead.stderr.split())
    assert "1 of 2 teacher servers did not answer" in text and "tokens/s, valid JSON" in text
    assert f"{missing.split('/')[2]}: no answer (" in text and "Start the server" in text
