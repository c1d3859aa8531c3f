"""The OpenAI-compatible teacher against a real loopback server: retries, structured output, repair, privacy."""
from __future__ import annotations

import json
import threading
import time

import pytest
from fault_server import FaultServer

from doctune.core.config import PrivacySettings
from doctune.core.teachers import TeacherCallError, TeacherError, open_teacher
from doctune.core.teachers.api import ApiTeacher, check_endpoint_allowed, is_loopback, retry_after_seconds

SCHEMA = {"type": "object", "properties": {"question": {"type": "string", "maxLength": 80},
                                           "answer": {"type": "string", "maxLength": 80}},
          "required": ["question", "answer"]}
MESSAGES = [{"role": "user", "content": "Passage:\nThe ferry Grey Tern sails to Ossenby twice a week.\n\nReply as JSON."}]


def teacher_for(server: FaultServer, **kwargs) -> ApiTeacher:
    options = {"retry_base_s": 0.01, "retry_max_s": 0.05, "max_retries": 3, "timeout_s": 2.0,
               "structured_output": "llama_cpp", **kwargs}
    return ApiTeacher(server.base_url, "test", **options)


def test_structured_reply_is_parsed_with_usage():
    with FaultServer() as server, teacher_for(server) as teacher:
        reply = teacher.complete(MESSAGES, schema=SCHEMA, max_tokens=64, seed=3)
    assert set(reply.data) == {"question", "answer"}
    assert reply.prompt_tokens == 50 and reply.completion_tokens > 0 and reply.attempts == 1
    body = server.requests[0]
    assert body["response_format"] == {"type": "json_object", "schema": SCHEMA}
    assert body["seed"] == 3 and body["max_tokens"] == 64


@pytest.mark.parametrize("fault", [
    ("status", 429, {"Retry-After": "0"}), ("status", 500), ("status", 502), ("drop",), ("malformed",), ("sleep", 3),
])
def test_transient_faults_are_retried(fault):
    with FaultServer(fault=lambda body, attempt: fault if attempt <= 2 else None) as server, \
            teacher_for(server, timeout_s=1.0) as teacher:
        reply = teacher.complete(MESSAGES, schema=SCHEMA, max_tokens=64)
    assert reply.attempts == 3 and reply.data is not None and teacher.retries == 2


def test_persistent_failure_raises_after_the_last_retry():
    with FaultServer(fault=lambda body, attempt: ("status", 503)) as server, teacher_for(server) as teacher:
        with pytest.raises(TeacherCallError, match="4 attempts: HTTP 503"):
            teacher.complete(MESSAGES, schema=SCHEMA)
    assert len(server.requests) == 4


def test_client_errors_are_not_retried():
    with FaultServer(fault=lambda body, attempt: ("status", 400)) as server, teacher_for(server) as teacher:
        with pytest.raises(TeacherCallError, match="HTTP 400"):
            teacher.complete(MESSAGES)
    assert len(server.requests) == 1


def test_retry_after_overrides_a_shorter_backoff():
    stamps: list[float] = []

    def throttle(body, attempt):
        stamps.append(time.monotonic())
        return ("status", 429, {"Retry-After": "1"}) if attempt == 1 else None

    with FaultServer(fault=throttle) as server, teacher_for(server) as teacher:
        teacher.complete(MESSAGES, schema=SCHEMA)
    assert stamps[1] - stamps[0] >= 0.95


def test_retry_after_header_forms():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= retry_after_seconds(future) <= 31


def test_backoff_grows_with_jitter_and_a_ceiling():
    teacher = ApiTeacher("http://127.0.0.1:9/v1", "m", retry_base_s=1.0, retry_max_s=8.0)
    delays = [[teacher._backoff(attempt, None) for _ in range(50)] for attempt in range(6)]
    for attempt, samples in enumerate(delays):
        ceiling = min(8.0, 2 ** attempt)
        assert all(ceiling / 2 <= d <= ceiling for d in samples)
        assert len(set(samples)) > 1
    assert teacher._backoff(0, 5.0) >= 5.0
    teacher.close()


def test_unparseable_reply_gets_one_repair_request():
    fixed = json.dumps({"question": "Where does the Grey Tern sail?", "answer": "To Ossenby."})
    replies = {1: ("text", "Sure! Here it is: question Where, answer Ossenby")}

    def fault(body, attempt):
        return replies.get(len(server.requests), ("text", fixed))

    with FaultServer(fault=fault) as server, teacher_for(server) as teacher:
        reply = teacher.complete(MESSAGES, schema=SCHEMA)
    assert reply.data == json.loads(fixed) and reply.meta["repaired"]
    assert len(server.requests) == 2 and "question, answer" in server.requests[1]["messages"][-1]["content"]


def test_repair_is_bounded_to_one():
    with FaultServer(fault=lambda body, attempt: ("text", "no json here")) as server, teacher_for(server) as teacher:
        reply = teacher.complete(MESSAGES, schema=SCHEMA)
    assert reply.data is None and len(server.requests) == 2


# what llama-cpp-python's server answers to a response_format type it does not know (as HTTP 500)
UNKNOWN_FORM = {"error": {"message": "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
                                     "'msg': \"Input should be 'text' or 'json_object'\"}]", "type": "internal_server_error"}}


def test_auto_mode_falls_back_when_json_schema_is_rejected():
    def fault(body, attempt):
        kind = (body.get("response_format") or {}).get("type")
        return ("status", 500, {}, UNKNOWN_FORM) if kind == "json_schema" else None

    with FaultServer(fault=fault) as server, teacher_for(server, structured_output="auto") as teacher:
        first = teacher.complete(MESSAGES, schema=SCHEMA)
        second = teacher.complete(MESSAGES, schema=SCHEMA)
    assert first.data and second.data and teacher.structured_output == "llama_cpp"
    kinds = [b["response_format"]["type"] for b in server.requests]
    assert kinds == ["json_schema", "json_object", "json_object"]


def test_one_server_error_does_not_turn_structured_output_off():
    """A plain HTTP 500 (an overloaded server) is retried with the same form; only an answer that names the
    parameter downgrades."""
    def fault(body, attempt):
        return ("status", 500) if len(server.requests) == 1 else None

    with FaultServer(fault=fault) as server, teacher_for(server, structured_output="auto") as teacher:
        replies = [teacher.complete(MESSAGES, schema=SCHEMA, seed=seed) for seed in range(4)]
    assert all(reply.data for reply in replies) and teacher.structured_output == "json_schema"
    assert [b["response_format"]["type"] for b in server.requests] == ["json_schema"] * 5


def test_a_server_without_structured_output_is_downgraded_once_with_a_warning():
    warnings: list[str] = []

    def fault(body, attempt):
        return ("status", 400, {}, {"error": "response_format is not supported"}) if "response_format" in body else None

    with FaultServer(fault=fault) as server, \
            teacher_for(server, structured_output="auto", warn=warnings.append) as teacher:
        for seed in range(3):
            assert teacher.complete(MESSAGES, schema=SCHEMA, seed=seed).data
    assert teacher.structured_output == "off" and len(warnings) == 1
    assert "does not support structured output" in warnings[0]
    asked_with_a_form = ["response_format" in b for b in server.requests]
    assert asked_with_a_form[:2] == [True, True] and not any(asked_with_a_form[2:])


def test_json_with_fences_and_control_characters_is_extracted():
    text = 'Here:\n```json\n{"question": "a\tb\x01c", "answer": "ok"}\n```'
    with FaultServer(fault=lambda body, attempt: ("text", text)) as server, \
            teacher_for(server, structured_output="off") as teacher:
        reply = teacher.complete(MESSAGES, schema=SCHEMA)
    assert reply.data == {"question": "a\tbc", "answer": "ok"} and len(server.requests) == 1
    assert "response_format" not in server.requests[0]


def test_loopback_detection():
    for url in ("http://127.0.0.1:8080/v1", "http://localhost:11434/v1", "http://[::1]:8000/v1", "http://127.5.0.1/v1"):
        assert is_loopback(url), url
    for url in ("https://api.openai.com/v1", "http://192.168.1.20:8000/v1", "http://10.0.0.2/v1"):
        assert not is_loopback(url), url


def test_remote_endpoint_needs_permission_and_never_offline():
    remote = "https://api.example.com/v1"
    with pytest.raises(TeacherError, match="not on this machine"):
        check_endpoint_allowed(remote, PrivacySettings())
    check_endpoint_allowed(remote, PrivacySettings(allow_remote_teacher=True))
    with pytest.raises(TeacherError, match="offline"):
        check_endpoint_allowed(remote, PrivacySettings(allow_remote_teacher=True, offline=True))
    check_endpoint_allowed("http://127.0.0.1:1/v1", PrivacySettings(offline=True))


@pytest.fixture
def lookups(monkeypatch, tmp_path):
    """Every name handed to the system resolver (which may ask a DNS server), and a hosts file of our own."""
    import socket

    import doctune.core.teachers.api as api

    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        asked.append(host.decode() if isinstance(host, bytes) else str(host))
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n127.0.0.1 teacher.test  # a local teacher by name\n"
                     "10.1.2.3 lan.localhost\n")
    monkeypatch.setattr(api, "HOSTS_FILE", hosts)
    return asked


def test_offline_mode_looks_up_no_name_on_the_network(lookups):
    offline = PrivacySettings(offline=True)
    for url in ("http://foo.localhost:8080/v1", "http://teacher.example:8000/v1"):
        with pytest.raises(TeacherError, match="offline"):
            check_endpoint_allowed(url, offline)
    assert not [name for name in lookups if name not in ("127.0.0.1", "::1")]


def test_local_means_a_loopback_address_after_resolution(lookups):
    for privacy in (PrivacySettings(), PrivacySettings(offline=True)):
        with pytest.raises(TeacherError, match="not"):  # *.localhost that the hosts file sends to the LAN
            check_endpoint_allowed("http://lan.localhost:8080/v1", privacy)
    assert check_endpoint_allowed("http://teacher.test:8080/v1", PrivacySettings(offline=True)) == \
        "http://127.0.0.1:8080/v1"
    assert check_endpoint_allowed("http://127.0.0.1:9/v1", PrivacySettings(offline=True)) == "http://127.0.0.1:9/v1"


def test_a_local_teacher_named_by_host_is_reached_at_the_address_it_resolved_to(project, lookups):
    with FaultServer() as server:
        port = server.base_url.split(":")[2].split("/")[0]
        project.config.privacy.offline = True
        project.config.teacher.kind = "openai"
        project.config.teacher.base_url = f"http://teacher.test:{port}/v1"
        with open_teacher(project) as teacher:
            assert teacher.complete(MESSAGES).text
            assert teacher.name.endswith("@teacher.test")
    assert server.host_headers == [f"teacher.test:{port}"]
    assert "teacher.test" not in lookups  # the name was never given to a resolver: connected to 127.0.0.1


def test_open_teacher_refuses_a_remote_endpoint(project):
    project.config.teacher.kind = "openai"
    project.config.teacher.base_url = "http://203.0.113.9/v1"
    with pytest.raises(TeacherError, match="allow_remote_teacher"):
        open_teacher(project)


def test_api_key_comes_from_the_environment(project, monkeypatch):
    monkeypatch.setenv("DOCTUNE_KEY_UNDER_TEST", "sk-abc123")
    with FaultServer(api_key="sk-abc123") as server:
        project.config.teacher.kind = "openai"
        project.config.teacher.base_url = server.base_url
        project.config.teacher.api_key_env = "DOCTUNE_KEY_UNDER_TEST"
        with open_teacher(project) as teacher:
            assert teacher.complete(MESSAGES).text
    assert server.auth_headers == ["Bearer sk-abc123"]
    assert "sk-abc123" not in project.config_path.read_text()


def test_cancel_cuts_a_retry_wait_short():
    from doctune.core.events import Cancelled, CancelToken

    cancel = CancelToken()
    with FaultServer(fault=lambda body, attempt: ("status", 429, {"Retry-After": "60"})) as server, \
            teacher_for(server, sleep=cancel.wait) as teacher:
        threading.Timer(0.3, cancel.cancel).start()
        started = time.monotonic()
        with pytest.raises(Cancelled):
            teacher.complete(MESSAGES)
    assert time.monotonic() - started < 5


def test_timeout_s_bounds_the_whole_request_not_each_read():
    with FaultServer(fault=lambda body, attempt: ("trickle", 0.1)) as server, \
            teacher_for(server, timeout_s=1.0, max_retries=1) as teacher:
        started = time.monotonic()
        with pytest.raises(TeacherCallError, match="timed out"):
            teacher.complete(MESSAGES, schema=SCHEMA)
        elapsed = time.monotonic() - started
    assert elapsed < 4.0, elapsed  # two attempts of one second (plus backoff), though every read got a byte
    assert len(server.requests) == 2


def test_cancel_abandons_a_request_in_flight_within_a_second():
    from doctune.core.events import Cancelled, CancelToken

    cancel = CancelToken()
    with FaultServer(fault=lambda body, attempt: ("sleep", 20)) as server, \
            teacher_for(server, timeout_s=60.0, cancel=cancel, sleep=cancel.wait) as teacher:
        threading.Timer(0.3, cancel.cancel).start()
        started = time.monotonic()
        with pytest.raises(Cancelled):
            teacher.complete(MESSAGES, schema=SCHEMA)
        assert time.monotonic() - started < 1.5



def _doctune(*args, stdin: str = "", env: dict | None = None):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "doctune.core", *args], input=stdin, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "200", **(env or {})})


def _endpoint_project(project, base_url, **teacher):
    project.config.teacher.kind = "openai"
    project.config.teacher.base_url = base_url
    project.config.teacher.model = "test"
    for key, value in {"max_retries": 0, "timeout_s": 5.0, **teacher}.items():
        setattr(project.config.teacher, key, value)
    project.save()
    return project


def test_teacher_test_explains_a_refused_key_and_a_server_that_is_not_there(project):
    import socket

    with FaultServer(api_key="sk-right") as server:
        _endpoint_project(project, server.base_url)
        refused = _doctune("teacher", "test", "-p", str(project.root))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "refused the API key" in refused.stderr and "set-key" in refused.stderr

    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _endpoint_project(project, f"http://127.0.0.1:{port}/v1")
    absent = _doctune("teacher", "test", "-p", str(project.root))
    assert absent.returncode == 1 and "Traceback" not in absent.stderr, absent.stderr
    assert "No teacher answered" in absent.stderr and "Start the server" in absent.stderr
    assert_teacher_check(project, passed=False, says="No teacher answered")


def test_teacher_reply_with_rich_markup_is_printed_as_text(project):
    reply = '{"city": "[bold]Oslo[/y]", "fact": "[/] has [link=x]fjords"}'
    with FaultServer(fault=lambda body, attempt: ("text", reply)) as server:
        _endpoint_project(project, server.base_url, structured_output="off")
        result = _doctune("teacher", "test", "-p", str(project.root))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "[bold]Oslo[/y]" in result.stdout
    assert_teacher_check(project, passed=True, says="valid JSON")


def assert_teacher_check(project, *, passed: bool, says: str) -> None:
    """The command keeps its verdict for the settings it tested, as the window's sidebar reads it."""
    from doctune.core.project import Project
    from doctune.core.records import TeacherCheck, settings_fingerprint, teacher_test_failed

    reopened = Project.open(project.root)
    check = TeacherCheck.load(reopened.layout.teacher_check)
    assert check.passed is passed and says in check.message and check.tested_at
    teacher = reopened.config.teacher.model_dump()
    assert check.settings == settings_fingerprint(teacher) and teacher_test_failed(reopened.layout, teacher) != passed


def test_set_key_without_a_keyring_says_how_to_use_an_environment_variable(project):
    _endpoint_project(project, "http://127.0.0.1:9/v1")
    result = _doctune("teacher", "set-key", "-p", str(project.root), stdin="sk-secret-123\n",
                      env={"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "api_key_env" in result.stderr and "sk-secret-123" not in result.stderr + result.stdout
    assert "sk-secret-123" not in project.config_path.read_text()


def test_teacher_test_on_a_server_that_trickles_says_to_raise_timeout_s(project):
    with FaultServer(fault=lambda body, attempt: ("trickle", 0.2)) as server:
        _endpoint_project(project, server.base_url, timeout_s=1.0)
        started = time.monotonic()
        result = _doctune("teacher", "test", "-p", str(project.root))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "did not finish its reply in time" in result.stderr and "teacher.timeout_s" in result.stderr
    assert time.monotonic() - started < 30



def test_a_redirect_is_never_followed_and_says_where_it_led():
    remote = "http://203.0.113.9/v1/chat/completions"
    with FaultServer(fault=lambda body, attempt: ("status", 302, {"Location": remote})) as server, \
            teacher_for(server) as teacher:
        with pytest.raises(TeacherCallError, match="redirects to http://203.0.113.9") as caught:
            teacher.complete(MESSAGES, schema=SCHEMA)
    assert len(server.requests) == 1 and "does not follow redirects" in str(caught.value)
