"""The servers behind an endpoint teacher: one HTTP exchange with a server, and the router that spreads requests
over several servers of the same model.

Each ``Endpoint`` serves at most ``concurrency`` requests at once. The ``Router`` hands a request the least busy
endpoint that is up. An endpoint that fails (its connection refused or dropped at once; ``down_after`` server
errors or timeouts in a row) is *down* for ``probe_after_s`` seconds (doubling while it keeps failing): the
requests waiting for a slot go to the others, and the requests still in flight on it are abandoned and sent to
another endpoint. When its time is up, one request probes it; a reply brings it back. When every endpoint is
down, requests are still sent to the one down longest, so a call retries and then fails as with a single server.
"""
from __future__ import annotations

import email.utils
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx

from doctune.core.events import Cancelled, CancelToken
from doctune.core.teachers.base import TeacherCallError

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
POLL_S = 0.2  # how often a waiting request looks at its deadline, the cancel token and its endpoint's health
MAX_REPLY_BYTES = 64_000_000
PROBE_MAX_FACTOR = 10  # a failing endpoint is left out at most this many times probe_after_s


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
    """A failed attempt worth repeating. ``kind``: ``connection`` (refused, dropped), ``timeout``, ``status`` (an
    HTTP status in ``RETRY_STATUS``), ``body`` (an unreadable reply) or ``moved`` (abandoned: its endpoint went
    down while it was in flight)."""

    def __init__(self, reason: str, retry_after: float | None = None, status: int | None = None,
                 body: str = "", kind: str = "status") -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.status = status
        self.body = body
        self.kind = kind

    @property
    def endpoint_failed(self) -> bool:
        """Whether the attempt says something about the server's health (a busy 429 or a bad body does not)."""
        return self.kind in ("connection", "timeout") or (self.status or 0) >= 500


class HttpCallError(TeacherCallError):
    """An HTTP error status that retrying will not change."""

    def __init__(self, message: str, status: int, body: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class Endpoint:
    """One server: its HTTP client, its slots and its health (changed only under the router's lock)."""

    def __init__(self, base_url: str, *, connect_url: str | None = None, api_key: str | None = None,
                 concurrency: int = 4, timeout_s: float = 120.0, cancel: CancelToken | None = None) -> None:
        """``connect_url``: ``base_url`` with its host already resolved; requests go there, with ``base_url``'s
        host name in the Host header. ``timeout_s``: the whole request, from sending it to the reply's last byte."""
        self.url = base_url.rstrip("/")
        self.base_url = (connect_url or base_url).rstrip("/")
        parts = urlparse(base_url)
        self.label = parts.netloc.rsplit("@", 1)[-1] or base_url
        self.host = parts.hostname or base_url
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self._cancel = cancel or CancelToken()
        self._api_key = api_key or ""
        self.in_flight = 0
        self.served = 0  # replies received (any status that is not a failure of the server)
        self.failed = 0  # attempts that failed on this server
        self.failures_in_a_row = 0
        self.times_down = 0
        self.down_until = 0.0  # monotonic; 0: up
        self.down_s = 0.0
        self.probing = False
        self.epoch = 0  # counts the times it went down: in-flight requests of an older epoch are abandoned
        self.abandon: Callable[[Endpoint], bool] = lambda endpoint: False
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        if connect_url and connect_url != base_url:
            headers["Host"] = self.label
        # room for requests abandoned at their deadline whose reading thread has not yet noticed
        limits = httpx.Limits(max_connections=concurrency * 2 + 2, max_keepalive_connections=concurrency)
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s), limits=limits)

    @property
    def down(self) -> bool:
        return self.down_until > 0

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """One request, within ``timeout_s`` in all, abandoned at once on a cancel or when this endpoint goes
        down while another is up (its work then moves there).

        The request runs in a thread of its own (a daemon: one left reading a dead server never holds the
        process up); this thread waits for it, watching the deadline, the cancel token and the health."""
        deadline = time.monotonic() + self.timeout_s
        epoch = self.epoch
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
                raise RetryableError(f"timed out: no complete reply within timeout_s = {self.timeout_s:g} s",
                                     kind="timeout")
            if self.down and self.epoch != epoch and self.abandon(self):
                raise RetryableError(f"abandoned: the teacher at {self.label} stopped answering", kind="moved")
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
                        raise RetryableError(f"timed out: the reply took longer than timeout_s = {self.timeout_s:g} s",
                                             kind="timeout")
                    if len(data) > MAX_REPLY_BYTES:
                        raise RetryableError(f"the reply is larger than {MAX_REPLY_BYTES // 1_000_000} MB", kind="body")
        except httpx.TimeoutException:
            raise RetryableError(f"timed out: no complete reply within timeout_s = {self.timeout_s:g} s",
                                 kind="timeout") from None
        except httpx.TransportError as exc:
            raise RetryableError(f"connection failed ({type(exc).__name__})", kind="connection") from None
        text = bytes(data).decode("utf-8", errors="replace")
        if response.status_code in RETRY_STATUS:
            raise RetryableError(f"HTTP {response.status_code}", retry_after_seconds(response.headers.get("retry-after")),
                                 response.status_code, self.scrub(text[:2000]))
        if 300 <= response.status_code < 400:  # never followed: a redirect could lead documents elsewhere
            where = response.headers.get("location", "another address")
            raise HttpCallError(f"HTTP {response.status_code}: the server redirects to {where}; DocTune does not "
                                "follow redirects (set the teacher's address to the one that answers)",
                                response.status_code, "")
        if response.status_code >= 400:
            detail = self.scrub(text[:2000])
            raise HttpCallError(f"HTTP {response.status_code}: {detail[:300]}", response.status_code, detail)
        try:
            payload = json.loads(text)
            message = payload["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise RetryableError("unreadable response body", kind="body") from None
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise RetryableError("response without message content", kind="body")
        return payload

    def scrub(self, text: str) -> str:
        """Server text with our API key blanked out (some servers echo the key they were given)."""
        return text.replace(self._api_key, "***") if self._api_key else text

    def close(self) -> None:
        self._client.close()


@dataclass
class EndpointStats:
    url: str
    served: int
    failed: int
    times_down: int
    up: bool


class Router:
    """Hands each request an endpoint with a free slot, and keeps the endpoints' health."""

    def __init__(self, endpoints: Sequence[Endpoint], *, down_after: int = 3, probe_after_s: float = 30.0,
                 warn: Callable[[str], Any] | None = None) -> None:
        if not endpoints:
            raise ValueError("a router needs at least one endpoint")
        self.endpoints = list(endpoints)
        self.down_after = down_after
        self.probe_after_s = probe_after_s
        self._warn = warn or (lambda message: None)
        self._lock = threading.Condition()
        self._turn = 0  # rotates the choice between equally busy endpoints
        for endpoint in self.endpoints:
            endpoint.abandon = self._another_is_up

    # ----- capacity ------------------------------------------------------------------------------
    @property
    def concurrency(self) -> int:
        """Requests served at once: the slots of the endpoints that are up (of one endpoint when none is)."""
        with self._lock:
            up = [endpoint.concurrency for endpoint in self.endpoints if not endpoint.down]
        return sum(up) if up else max(endpoint.concurrency for endpoint in self.endpoints)

    def stats(self) -> list[EndpointStats]:
        with self._lock:
            return [EndpointStats(e.url, e.served, e.failed, e.times_down, not e.down) for e in self.endpoints]

    def _another_is_up(self, endpoint: Endpoint) -> bool:
        return any(other is not endpoint and not other.down for other in self.endpoints)

    def another_is_up(self, endpoint: Endpoint) -> bool:
        with self._lock:
            return self._another_is_up(endpoint)

    # ----- choosing an endpoint ------------------------------------------------------------------
    def acquire(self, avoid: Endpoint | None = None, cancel: CancelToken | None = None) -> Endpoint:
        """An endpoint with a free slot (its slot taken), waiting until one frees. ``avoid``: the endpoint the
        request just failed on, chosen again only when no other will do."""
        with self._lock:
            while True:
                if cancel is not None and cancel.cancelled:
                    raise Cancelled()
                chosen = self._choose(avoid, time.monotonic())
                if chosen is not None:
                    chosen.in_flight += 1
                    return chosen
                self._lock.wait(POLL_S)

    def _choose(self, avoid: Endpoint | None, now: float) -> Endpoint | None:
        free = [e for e in self.endpoints if e.in_flight < e.concurrency]
        due = [e for e in free if e.down and e.down_until <= now and not e.probing]
        if due:  # its time out is over: this request probes it (and moves on at once should it fail)
            due[0].probing = True
            return due[0]
        if any(not e.down for e in self.endpoints):
            up = [e for e in free if not e.down]
        else:  # every endpoint is down: retry on the one down longest, as a single server is retried
            up = sorted(free, key=lambda e: e.down_until)[:1]
        if len(up) > 1 and avoid in up:
            up.remove(avoid)
        if not up:
            return None
        self._turn += 1
        order = {id(e): (i - self._turn) % len(self.endpoints) for i, e in enumerate(self.endpoints)}
        return min(up, key=lambda e: (e.in_flight / e.concurrency, order[id(e)]))

    # ----- outcomes --------------------------------------------------------------------------------
    def release(self, endpoint: Endpoint, error: BaseException | None = None) -> bool:
        """Give the slot back and learn from the outcome; return whether the endpoint is down now.

        A reply (even an HTTP error that retrying will not change) shows the server is there; a refused or
        dropped connection takes it out at once, server errors and timeouts after ``down_after`` in a row."""
        with self._lock:
            endpoint.in_flight -= 1
            was_probe, endpoint.probing = endpoint.probing, False
            if isinstance(error, RetryableError) and error.endpoint_failed:
                endpoint.failed += 1
                endpoint.failures_in_a_row += 1
                failing = was_probe or error.kind == "connection" or endpoint.failures_in_a_row >= self.down_after
                # a request sent before it went down says nothing new: only a probe, or a retry once its time out
                # is over (every endpoint down), takes it out again (for longer)
                if failing and (was_probe or endpoint.down_until <= time.monotonic()):
                    self._take_out(endpoint, str(error))
            elif isinstance(error, Cancelled) or (isinstance(error, RetryableError) and error.kind == "moved"):
                pass  # says nothing about the server
            else:
                endpoint.served += 1
                endpoint.failures_in_a_row = 0
                if endpoint.down:
                    endpoint.down_until = endpoint.down_s = 0.0
            self._lock.notify_all()
            return endpoint.down

    def _take_out(self, endpoint: Endpoint, reason: str) -> None:
        first = not endpoint.down
        endpoint.down_s = self.probe_after_s if first else min(endpoint.down_s * 2,
                                                                self.probe_after_s * PROBE_MAX_FACTOR)
        endpoint.down_until = time.monotonic() + endpoint.down_s
        endpoint.epoch += 1
        endpoint.times_down += 1
        if first and len(self.endpoints) > 1:
            others = "its requests go to the other servers" if self._another_is_up(endpoint) \
                else "no other server answers either"
            self._warn(f"The teacher at {endpoint.label} stopped answering ({reason}); {others}, and it is tried "
                       f"again in {endpoint.down_s:g} s.")

    def close(self) -> None:
        for endpoint in self.endpoints:
            endpoint.close()
