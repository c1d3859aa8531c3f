"""A teacher behind OpenAI-compatible chat endpoints (Ollama, vLLM, LM Studio, llama.cpp server, OpenAI).

One endpoint, or several servers of the same model (``teacher.base_urls``): requests are spread over them,
``concurrency`` in flight on each, and a server that stops answering is left out while the others take its work
(``endpoints.Router``). Requests are safe to send from several threads at once. A request that meets a 429, a
5xx, a timeout, a dropped connection or an unreadable body is retried with exponential backoff and full jitter,
waiting at least what ``Retry-After`` asks; moving to another server after one went down is immediate and is no
retry. Structured output uses the server's own constrained decoding where it has one; otherwise the JSON is
pulled out of the text, and a reply without a usable object gets one repair request.

API keys are held in memory only: each is sent in the ``Authorization`` header to its own endpoint and never
logged, written, or put in an error message.
"""
from __future__ import annotations

import ipaddress
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

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
from doctune.core.teachers.endpoints import (  # noqa: F401 (re-exported: the transport's errors and helpers)
    MAX_REPLY_BYTES,
    POLL_S,
    RETRY_STATUS,
    Endpoint,
    EndpointStats,
    HttpCallError,
    RetryableError,
    Router,
    retry_after_seconds,
)

# A structured-output form the server does not take: one of these statuses, and an answer naming the parameter.
# Anything else (a 500 of an overloaded server, a 400 about the prompt) is a failed request, never a downgrade.
REJECTED_STATUS = {400, 415, 422, 500, 501}
REJECTED_WORDS = ("response_format", "json_schema", "json_object", "guided_json", "structured output", "grammar")
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
        raise TeacherError("No teacher endpoint is set.", "Set teacher.base_url, e.g. http://127.0.0.1:11434/v1 "
                           "(or teacher.base_urls for several servers of the same model).",
                           window_hint="On the Teacher page, enter the server's Address (for example "
                                       "http://127.0.0.1:11434/v1) and press Save.")
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


def check_endpoints_allowed(base_urls: Sequence[str], privacy) -> dict[str, str]:
    """``check_endpoint_allowed`` for each server of the teacher: every one must be allowed (the consent to send
    documents off this machine covers each non-local one). Returns each URL's address to send requests to."""
    if not base_urls:
        check_endpoint_allowed("", privacy)  # raises: no endpoint set
    return {url: check_endpoint_allowed(url, privacy) for url in base_urls}


def is_unsupported_form(exc: Exception) -> bool:
    """Whether a failed request is the server saying it does not take this structured-output form."""
    status, body = getattr(exc, "status", None), str(getattr(exc, "body", "")).lower()
    return status in REJECTED_STATUS and any(word in body for word in REJECTED_WORDS)


class ApiTeacher(Teacher):
    def __init__(self, base_url: str | Sequence[str], model: str, *,
                 api_key: str | Mapping[str, str | None] | None = None, concurrency: int = 4,
                 timeout_s: float = 120.0, max_retries: int = 5, retry_base_s: float = 1.0,
                 retry_max_s: float = 60.0, temperature: float = 0.7, max_tokens: int = 1024,
                 structured_output: str = "auto", sleep: Callable[[float], Any] | None = None,
                 connect_url: str | Mapping[str, str] | None = None, warn: Callable[[str], Any] | None = None,
                 cancel: CancelToken | None = None, down_after: int = 3, probe_after_s: float = 30.0) -> None:
        """``base_url``: one endpoint, or several servers of the same model. ``api_key`` and ``connect_url``:
        one value, or one per base URL (a mapping). ``concurrency``: requests in flight on each endpoint.
        ``sleep`` waits between retries; pass ``CancelToken.wait`` so that a cancel ends the wait.
        ``cancel``: a cancel also abandons the requests in flight (within a fraction of a second).
        ``timeout_s``: the whole request, from sending it to the last byte of the reply (not each read).
        ``connect_url``: the base URL with its host already resolved (``check_endpoint_allowed``); requests go
        there, with the base URL's host name in the Host header. ``down_after``, ``probe_after_s``: when a
        failing endpoint is left out, and for how long (``endpoints.Router``)."""
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ValueError("ApiTeacher needs at least one base URL")
        self._cancel = cancel or CancelToken()
        self._warn = warn or (lambda message: None)
        endpoints = [Endpoint(url, connect_url=_for(connect_url, url), api_key=_for(api_key, url),
                              concurrency=concurrency, timeout_s=timeout_s, cancel=self._cancel) for url in urls]
        self._router = Router(endpoints, down_after=down_after, probe_after_s=probe_after_s, warn=self._warn)
        self.base_url = endpoints[0].base_url
        self.model = model
        hosts = ",".join(dict.fromkeys(endpoint.host for endpoint in endpoints))
        self.name = f"openai:{model or 'default'}@{hosts}" + (f" ({len(endpoints)} servers)" if len(endpoints) > 1 else "")
        self.max_retries = max_retries
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.structured_output = structured_output
        self._sleep = sleep or time.sleep
        self.timeout_s = timeout_s
        self._mode_lock = threading.Lock()
        self.retries = 0  # requests repeated after a transient failure (all threads)
        self.moves = 0  # requests sent to another endpoint after theirs went down (all threads)
        self._options: dict[str, Any] = {
            "concurrency": concurrency, "timeout_s": timeout_s, "max_retries": max_retries,
            "retry_base_s": retry_base_s, "retry_max_s": retry_max_s, "temperature": temperature,
            "max_tokens": max_tokens, "sleep": sleep, "warn": warn, "cancel": cancel,
            "down_after": down_after, "probe_after_s": probe_after_s,
        }
        self._per_url = {url: (_for(api_key, url), _for(connect_url, url)) for url in urls}

    @property
    def concurrency(self) -> int:
        """Requests in flight at once: the sum over the endpoints that are up (the synthesis pool's size)."""
        return self._router.concurrency

    @concurrency.setter
    def concurrency(self, value: int) -> None:
        for endpoint in self._router.endpoints:
            endpoint.concurrency = value

    @property
    def endpoints(self) -> list[Endpoint]:
        return self._router.endpoints

    def one_per_endpoint(self) -> list[ApiTeacher]:
        """A teacher for each endpoint alone, with the same settings (``doctune teacher test`` probes each)."""
        return [ApiTeacher(url, self.model, api_key=key, connect_url=connect, structured_output=self.structured_output,
                           **self._options) for url, (key, connect) in self._per_url.items()]

    def endpoint_stats(self) -> list[EndpointStats]:
        """Per endpoint: replies served, failed attempts, times it went down, and whether it is up now."""
        return self._router.stats()

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

    # ----- one HTTP request with retries, over the endpoints -----------------------------------
    def _post_once(self, body: dict[str, Any], avoid: Endpoint | None = None) -> dict[str, Any]:
        """One attempt on the endpoint the router chooses; a failure carries the endpoint (``exc.endpoint``), so
        that the retry avoids it."""
        endpoint = self._router.acquire(avoid, self._cancel)
        try:
            payload = endpoint.post(body)
        except BaseException as exc:
            self._router.release(endpoint, exc)
            exc.endpoint = endpoint  # type: ignore[attr-defined]
            raise
        self._router.release(endpoint)
        return payload

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        ceiling = min(self.retry_max_s, self.retry_base_s * 2 ** attempt)
        delay = random.uniform(ceiling / 2, ceiling)
        return max(delay, min(retry_after, max(self.retry_max_s, 1.0) * 5)) if retry_after is not None else delay

    def _post(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """The request, retried up to ``max_retries`` times with backoff. An attempt whose endpoint is down
        afterwards moves to another endpoint that is up at once, without counting as a retry (at most twice per
        endpoint, so a call always ends)."""
        last, attempts, retried, moved = "no attempt", 0, 0, 0
        avoid: Endpoint | None = None
        while True:
            attempts += 1
            try:
                return self._post_once(body, avoid), attempts
            except RetryableError as exc:
                avoid = getattr(exc, "endpoint", None)
                several = len(self.endpoints) > 1
                last = f"{exc} (at {avoid.label})" if several and avoid is not None else str(exc)
                if avoid is not None and avoid.down and moved < 2 * len(self.endpoints) \
                        and self._router.another_is_up(avoid):
                    moved += 1
                    self.moves += 1
                    continue
                if retried == self.max_retries:
                    break
                retried += 1
                self.retries += 1
                if self._sleep(self._backoff(retried - 1, exc.retry_after)) is True:  # CancelToken.wait: cancelled
                    raise Cancelled() from None
        raise TeacherCallError(f"teacher failed after {attempts} attempts: {last}")

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
        self._router.close()


def _for(value: Any, url: str) -> Any:
    """The value of a per-endpoint setting for ``url``: the mapping's entry, or the one value for all."""
    return value.get(url) if isinstance(value, Mapping) else value
