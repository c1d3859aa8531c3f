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
import random
import threading
import time
from typing import Any, Callable
from urllib.parse import urlparse

import httpx

from doctune.core.events import Cancelled
from doctune.core.teachers.base import (
    Teacher, TeacherCallError, TeacherError, TeacherReply, estimate_tokens, extract_json, missing_required,
)

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
REJECTED = ("HTTP 400", "HTTP 404", "HTTP 415", "HTTP 422", "HTTP 500")  # a request form the server does not take
STRUCTURED_MODES = ("json_schema", "llama_cpp", "json_object", "off")
REPAIR_PROMPT = (
    "Your reply was not a JSON object with the fields {fields}. Reply again with only that JSON object, "
    "no other text."
)


def is_loopback(base_url: str) -> bool:
    host = (urlparse(base_url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint_allowed(base_url: str, privacy) -> None:
    """Refuse a non-loopback endpoint unless the project allows remote teachers (never when offline)."""
    if not base_url:
        raise TeacherError("No teacher endpoint is set.", "Set teacher.base_url, e.g. http://127.0.0.1:11434/v1.")
    if is_loopback(base_url):
        return
    host = urlparse(base_url).hostname or base_url
    if privacy.offline:
        raise TeacherError(f"The teacher endpoint {host} is not on this machine and the project is offline.",
                           "Use a local teacher, or turn privacy.offline off.")
    if not privacy.allow_remote_teacher:
        raise TeacherError(
            f"The teacher endpoint {host} is not on this machine: your document text would be sent to it.",
            "If that is what you want, set privacy.allow_remote_teacher = true in doctune.toml.",
        )


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
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class ApiTeacher(Teacher):
    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, concurrency: int = 4,
                 timeout_s: float = 120.0, max_retries: int = 5, retry_base_s: float = 1.0,
                 retry_max_s: float = 60.0, temperature: float = 0.7, max_tokens: int = 1024,
                 structured_output: str = "auto", sleep: Callable[[float], Any] | None = None) -> None:
        """``sleep`` waits between retries; pass ``CancelToken.wait`` so that a cancel ends the wait."""
        self.base_url = base_url.rstrip("/")
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
        self._mode_lock = threading.Lock()
        self._api_key = api_key or ""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
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
        try:
            response = self._client.post(f"{self.base_url}/chat/completions", json=body)
        except httpx.TimeoutException:
            raise RetryableError("timed out") from None
        except httpx.TransportError as exc:
            raise RetryableError(f"connection failed ({type(exc).__name__})") from None
        if response.status_code in RETRY_STATUS:
            raise RetryableError(f"HTTP {response.status_code}", retry_after_seconds(response.headers.get("retry-after")))
        if response.status_code >= 400:
            raise TeacherCallError(f"HTTP {response.status_code}: {self._scrub(response.text[:300])}")
        try:
            payload = response.json()
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
                    raise Cancelled()
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
                    if str(exc).startswith(REJECTED):
                        continue  # this form is rejected; try the next
                    raise
                self.structured_output = mode
                return payload, 1
            self.structured_output = "off"
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
