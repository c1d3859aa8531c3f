"""A teacher behind an OpenAI-compatible chat endpoint (Ollama, vLLM, LM Studio, llama.cpp server, OpenAI).

Requests are safe to send from several threads at once (``concurrency`` of
them are in flight during synthesis). A request that meets a 429, a 5xx, a
timeout, a dropped connection or an unreadable body is retried with
exponential backoff and full jitter, waiting at least what ``Retry-After``
asks. Structured output uses the server's own constrained decoding where it
has one; otherwise the JSON is pulled out of the text, and a reply without a
usable object gets one repair request.

The API key is held in memory only: it is sent in the ``Authorization``
header and never logged, written, or put in an error message.
"""
from __future__ import annotations

import email.utils
import ipaddress
import json
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from doctune.core.events import Cancelled, CancelToken
from doctune.core.teachers.base import (
    Teacher,
    TeacherCallError,
    TeacherError,
    TeacherReply,
    estimate_tokens,
    extract_json,
    missing_required,
)

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
# A structured-output form the server does not take: one of these statuses, and an answer naming the parameter.
# Anything else (a 500 of an overloaded server, a 400 about the prompt) is a failed request, never a downgrade.
REJECTED_STATUS = {400, 415, 422, 500, 501}
REJECTED_WORDS = ("response_format", "json_schema", "json_object", "guided_json", "structured output", "grammar")
POLL_S = 0.2  # how often a waiting request looks at its deadline and the cancel token
MAX_REPLY_BYTES = 64_000_000
STRUCTURED_MODES = ("json_schema", "llama_cpp", "json_object", "off")
REPAIR_PROMPT = (
    "Your reply was not a JSON object with the fields {fields}. Reply again with only that JSON object, "
    "no other text."
)


HOSTS_FILE = Path(os.environ.get("SystemRoot", "C:\\Windows"), "System32", "drivers", "etc", "hosts") \
    if os.name == "nt" else Path("/etc/hosts")


def hosts_file_addresses(host: str, hosts_file: Path | None = None) -> list[str]:
    """The addresses the machine's own hosts file gives ``host`` (no resolver, no network)."""
    try:
        text = (hosts_file or HOSTS_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and host in (name.lower() for name in fields[1:]):
            found.append(fields[0])
    return found


def _is_loopback_ip(text: str) -> bool:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def host_addresses(host: str, *, offline: bool) -> list[str]:
    """What ``host`` resolves to: an IP literal is itself; a name is looked up in the hosts file, and only when
    not ``offline`` (and not found there) through the system resolver, which may ask a DNS server."""
    host = host.lower().strip("[]")
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    listed = hosts_file_addresses(host)
    if listed:
        return listed
    if host == "localhost":
        return ["127.0.0.1"]  # RFC 6761: localhost is this machine, whatever the hosts file says
    if offline:
        return []
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)})
    except (OSError, UnicodeError):
        return []


def loopback_address(base_url: str, *, offline: bool = True) -> str | None:
    """The loopback address the endpoint's host resolves to, or None when it is not this machine: every address
    the host resolves to must be a loopback one. ``offline``: names are resolved from the hosts file only."""
    host = urlparse(base_url).hostname or ""
    addresses = host_addresses(host, offline=offline) if host else []
    return addresses[0].split("%", 1)[0] if addresses and all(map(_is_loopback_ip, addresses)) else None


def is_loopback(base_url: str, *, offline: bool = True) -> bool:
    return loopback_address(base_url, offline=offline) is not None


def pinned_url(base_url: str, address: str) -> str:
    """``base_url`` with its host replaced by ``address``, so no later lookup can send it elsewhere."""
    parts = urlparse(base_url)
    host = f"[{address}]" if ":" in address else address
    netloc = host + (f":{parts.port}" if parts.port else "")
    if parts.username or parts.password:
        netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
    return parts._replace(netloc=netloc).geturl()


def check_endpoint_allowed(base_url: str, privacy) -> str:
    """Refuse a non-loopback endpoint unless the project allows remote teachers (never when offline).

    Returns the URL to send requests to: for a local endpoint named by a host name, the URL with that name
    replaced by the loopback address it resolved to (checked once, used for every request)."""
    if not base_url:
        raise TeacherError("No teacher endpoint is set.", "Set teacher.base_url, e.g. http://127.0.0.1:11434/v1.")
    host = urlparse(base_url).hostname or base_url
    address = loopback_address(base_url, offline=privacy.offline)
    if address is not None:
        return base_url if address == host.strip("[]") else pinned_url(base_url, address)
    if privacy.offline:
        raise TeacherError(f"The teacher endpoint {host} is not a loopback address of this machine, and the project "
                           "is offline (so no name is looked up on the network).",
                           "Use a local teacher at 127.0.0.1 (or a name the hosts file maps to it), "
                           "or turn privacy.offline off.",
                           window_hint="On the Teacher page, enter a server on this computer as the Address "
                                       "(for example http://127.0.0.1:11434/v1) and press Save. This project works "
                                       "offline; that is set by privacy.offline in the doctune.toml file of the "
                                       "project folder (the window has no switch for it).")
    if not privacy.allow_remote_teacher:
        raise TeacherError(
            f"The teacher endpoint {host} is not on this machine: your document text would be sent to it.",
            "If that is what you want, set privacy.allow_remote_teacher = true in doctune.toml.",
            window_hint="If that is what you want, tick 'I understand, and allow sending my documents to this "
                        "server' on the Teacher page and press Save.",
        )
    return base_url


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds asked by a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class RetryableError(Exception):
    def __init__(self, reason: str, retry_after: float | None = None, status: int | None = None,
                 body: str = "") -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.status = status
        self.body = body


class HttpCallError(TeacherCallError):
    """An HTTP error status that retrying will not change."""

    def __init__(self, message: str, status: int, body: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def is_unsupported_form(exc: Exception) -> bool:
    """Whether a failed request is the server saying it does not take this structured-output form."""
    status, body = getattr(exc, "status", None), str(getattr(exc, "body", "")).lower()
    return status in REJECTED_STATUS and any(word in body for word in REJECTED_WORDS)


class ApiTeacher(Teacher):
    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, concurrency: int = 4,
                 timeout_s: float = 120.0, max_retries: int = 5, retry_base_s: float = 1.0,
                 retry_max_s: float = 60.0, temperature: float = 0.7, max_tokens: int = 1024,
                 structured_output: str = "auto", sleep: Callable[[float], Any] | None = None,
                 connect_url: str | None = None, warn: Callable[[str], Any] | None = None,
                 cancel: CancelToken | None = None) -> None:
        """``sleep`` waits between retries; pass ``CancelToken.wait`` so that a cancel ends the wait.
        ``cancel``: a cancel also abandons the requests in flight (within a fraction of a second).
        ``timeout_s``: the whole request, from sending it to the last byte of the reply (not each read).
        ``connect_url``: ``base_url`` with its host already resolved (``check_endpoint_allowed``); requests go
        there, with ``base_url``'s host name in the Host header."""
        self.base_url = (connect_url or base_url).rstrip("/")
        self.model = model
        self.name = f"openai:{model or 'default'}@{urlparse(base_url).hostname}"
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.structured_output = structured_output
        self._sleep = sleep or time.sleep
        self._cancel = cancel or CancelToken()
        self.timeout_s = timeout_s
        self._warn = warn or (lambda message: None)
        self._mode_lock = threading.Lock()
        self._api_key = api_key or ""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        if connect_url and connect_url != base_url:
            headers["Host"] = urlparse(base_url).netloc.rsplit("@", 1)[-1]
        # room for requests abandoned at their deadline whose reading thread has not yet noticed
        limits = httpx.Limits(max_connections=concurrency * 2 + 2, max_keepalive_connections=concurrency)
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s), limits=limits)
        self.retries = 0  # requests repeated after a transient failure (all threads)

    # ----- request bodies --------------------------------------------------------------------
    def request_body(self, messages, schema=None, max_tokens=512, *, temperature=None, seed=None,
                     mode: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model, "messages": messages,
            "max_tokens": max(1, min(max_tokens, self.max_tokens)),
            "temperature": self.temperature if temperature is None else temperature,
        }
        if seed is not None:
            body["seed"] = seed
        mode = mode or self._mode()
        if schema and mode == "json_schema":
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "reply", "schema": schema}}
        elif schema and mode == "llama_cpp":
            body["response_format"] = {"type": "json_object", "schema": schema}
        elif schema and mode == "json_object":
            body["response_format"] = {"type": "json_object"}
        return body

    def _mode(self) -> str:
        return self.structured_output if self.structured_output in STRUCTURED_MODES else "json_schema"

    # ----- one HTTP request with retries -----------------------------------------------------
    def _post_once(self, body: dict[str, Any]) -> dict[str, Any]:
        """One request, within ``timeout_s`` in all and abandoned at once on a cancel.

        The request runs in a thread of its own (a daemon: one left reading a dead server never holds the
        process up); this thread waits for it, watching the deadline and the cancel token."""
        deadline = time.monotonic() + self.timeout_s
        outcome: dict[str, Any] = {}
        finished = threading.Event()

        def send() -> None:
            try:
                outcome["payload"] = self._send(body, deadline)
            except BaseException as exc:  # handed to the waiting thread
                outcome["error"] = exc
            finally:
                finished.set()

        threading.Thread(target=send, name="teacher-request", daemon=True).start()
        while not finished.wait(POLL_S):
            if self._cancel.cancelled:
                raise Cancelled()
            if time.monotonic() > deadline + POLL_S:
                raise RetryableError(f"timed out: no complete reply within timeout_s = {self.timeout_s:g} s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["payload"]

    def _send(self, body: dict[str, Any], deadline: float) -> dict[str, Any]:
        """The HTTP exchange: the reply is read in pieces, each checked against the deadline and the cancel."""
        def left() -> float:
            return max(0.05, deadline - time.monotonic())

        try:
            with self._client.stream("POST", f"{self.base_url}/chat/completions", json=body,
                                     timeout=httpx.Timeout(left())) as response:
                data = bytearray()
                for piece in response.iter_bytes():
                    data += piece
                    if self._cancel.cancelled:
                        raise Cancelled()
                    if time.monotonic() > deadline:
                        raise RetryableError(f"timed out: the reply took longer than timeout_s = {self.timeout_s:g} s")
                    if len(data) > MAX_REPLY_BYTES:
                        raise RetryableError(f"the reply is larger than {MAX_REPLY_BYTES // 1_000_000} MB")
        except httpx.TimeoutException:
            raise RetryableError(f"timed out: no complete reply within timeout_s = {self.timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise RetryableError(f"connection failed ({type(exc).__name__})") from None
        text = bytes(data).decode("utf-8", errors="replace")
        if response.status_code in RETRY_STATUS:
            raise RetryableError(f"HTTP {response.status_code}", retry_after_seconds(response.headers.get("retry-after")),
                                 response.status_code, self._scrub(text[:2000]))
        if 300 <= response.status_code < 400:  # never followed: a redirect could lead documents elsewhere
            where = response.headers.get("location", "another address")
            raise HttpCallError(f"HTTP {response.status_code}: the server redirects to {where}; DocTune does not "
                                "follow redirects (set teacher.base_url to the address that answers)",
                                response.status_code, "")
        if response.status_code >= 400:
            detail = self._scrub(text[:2000])
            raise HttpCallError(f"HTTP {response.status_code}: {detail[:300]}", response.status_code, detail)
        try:
            payload = json.loads(text)
            message = payload["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise RetryableError("unreadable response body") from None
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise RetryableError("response without message content")
        return payload

    def _scrub(self, text: str) -> str:
        """Server text with our API key blanked out (some servers echo the key they were given)."""
        return text.replace(self._api_key, "***") if self._api_key else text

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        ceiling = min(self.retry_max_s, self.retry_base_s * 2 ** attempt)
        delay = random.uniform(ceiling / 2, ceiling)
        return max(delay, min(retry_after, max(self.retry_max_s, 1.0) * 5)) if retry_after is not None else delay

    def _post(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        last = "no attempt"
        for attempt in range(self.max_retries + 1):
            try:
                return self._post_once(body), attempt + 1
            except RetryableError as exc:
                last = str(exc)
                if attempt == self.max_retries:
                    break
                self.retries += 1
                if self._sleep(self._backoff(attempt, exc.retry_after)) is True:  # CancelToken.wait: cancelled
                    raise Cancelled() from None
        raise TeacherCallError(f"teacher failed after {self.max_retries + 1} attempts: {last}")

    # ----- structured-output support ---------------------------------------------------------
    def _resolve_mode(self, messages, schema, max_tokens, temperature, seed) -> tuple[dict, int] | None:
        """In ``auto`` mode, find the structured-output form this server takes (once); return the first reply."""
        with self._mode_lock:
            if self.structured_output != "auto":
                return None
            for mode in ("json_schema", "llama_cpp"):
                body = self.request_body(messages, schema, max_tokens, temperature=temperature, seed=seed, mode=mode)
                try:
                    payload = self._post_once(body)
                except (RetryableError, TeacherCallError) as exc:
                    if is_unsupported_form(exc):
                        continue  # the server says it does not take this form; try the next
                    raise
                self.structured_output = mode
                return payload, 1
            self.structured_output = "off"
            self._warn(f"The teacher at {self.name.split('@', 1)[-1]} does not support structured output "
                       "(response_format); its replies are read as plain text from now on. Set "
                       "teacher.structured_output in doctune.toml to choose a form yourself.")
            return None

    # ----- the interface ---------------------------------------------------------------------
    def complete(self, messages, schema=None, max_tokens=512, *, temperature=None, seed=None) -> TeacherReply:
        started = time.perf_counter()
        first = None
        if schema and self.structured_output == "auto":
            try:
                first = self._resolve_mode(messages, schema, max_tokens, temperature, seed)
            except RetryableError:
                first = None  # a transient failure: the normal path retries it
        payload, attempts = first or self._post(
            self.request_body(messages, schema, max_tokens, temperature=temperature, seed=seed))
        reply = self._reply(payload, schema, attempts, started)
        if schema and missing_required(schema, reply.data):
            reply = self._repair(messages, schema, max_tokens, temperature, seed, reply, started)
        return reply

    def _reply(self, payload: dict, schema, attempts: int, started: float) -> TeacherReply:
        text = payload["choices"][0]["message"]["content"]
        usage = payload.get("usage") or {}
        return TeacherReply(
            text=text, data=extract_json(text) if schema else None,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or estimate_tokens(text)),
            seconds=time.perf_counter() - started, attempts=attempts,
        )

    def _repair(self, messages, schema, max_tokens, temperature, seed, bad: TeacherReply, started) -> TeacherReply:
        fields = ", ".join(schema.get("required", [])) or "asked for"
        repair = list(messages) + [
            {"role": "assistant", "content": bad.text[:4000] or "(empty)"},
            {"role": "user", "content": REPAIR_PROMPT.format(fields=fields)},
        ]
        payload, attempts = self._post(self.request_body(repair, schema, max_tokens, temperature=temperature, seed=seed))
        fixed = self._reply(payload, schema, bad.attempts + attempts, started)
        fixed.prompt_tokens += bad.prompt_tokens
        fixed.completion_tokens += bad.completion_tokens
        fixed.meta["repaired"] = True
        return fixed

    def close(self) -> None:
        self._client.close()
