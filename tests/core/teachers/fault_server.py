"""A small OpenAI-compatible chat server on 127.0.0.1 that injects faults on demand.

Replies are deterministic: each field of the requested JSON schema is filled
with words taken from the passage in the prompt, chosen by a hash of the
request (its messages and seed), so they are grounded, differ between tasks,
and repeat exactly for the same request.

``fault(body, attempt)`` decides, per request, what happens: ``None`` (a good
reply) or one of ``("status", code, headers[, payload])``, ``("sleep", seconds)`` (answer
late, for client timeouts), ``("drop",)`` (close the connection without a
reply), ``("malformed",)`` (HTTP 200 with a body that is not JSON),
``("text", content)`` (a reply whose content is the given text), ``("trickle", seconds)``
(a good reply sent one byte every ``seconds``: a server that never times out a read).
``attempt`` counts the requests with the same messages, from 1.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Fault = Callable[[dict, int], tuple | None]
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+|\d+")


def _digest(*parts: Any) -> int:
    return int(hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12], 16)


def _passage(messages: list[dict]) -> str:
    user = next((m["content"] for m in messages if m["role"] == "user"), "")
    match = re.search(r"(?:Passage|Text):\n(.*)\n\n", user, re.DOTALL)
    return match.group(1) if match else user


def _words_text(words: list[str], key: int, low: int, high: int, prefix: str = "", size: int = 120) -> str:
    rng = random.Random(key)
    out = prefix
    while len(out) < max(low, min(high, size)) and words:
        out = (out + " " + rng.choice(words)).strip()
    return out[:high]


def fill(schema: dict, words: list[str], key: int, name: str = "") -> Any:
    kind = schema.get("type")
    if kind == "object":
        return {prop: fill(child, words, key + i * 7, prop) for i, (prop, child) in enumerate(schema["properties"].items())}
    if kind == "array":
        count = max(schema.get("minItems", 1), min(schema.get("maxItems", 3), 5))
        return [fill(schema["items"], words, key + i * 13, name) for i in range(count)]
    if kind == "boolean":
        return True
    if "enum" in schema:
        return schema["enum"][key % len(schema["enum"])]
    low, high = schema.get("minLength", 1), schema.get("maxLength", 200)
    if name == "question":
        return _words_text(words, key, low, high - 1, "What is known about", size=70) + "?"
    if name in ("entities", "options"):
        return _words_text(words, key, 1, high, size=20)
    return _words_text(words, key, low, high)


def default_schema(messages: list[dict]) -> dict:
    """The fields a prompt asks for when the request carries no schema (plain JSON mode)."""
    user = messages[-1]["content"]
    names = re.findall(r'"(\w+)"', user.split("Reply as JSON", 1)[-1]) or ["text"]
    return {"type": "object", "properties": {n: {"type": "string", "maxLength": 300} for n in dict.fromkeys(names)}}


class FaultServer:
    def __init__(self, fault: Fault | None = None, delay_s: float = 0.0, api_key: str | None = None) -> None:
        self.fault = fault or (lambda body, attempt: None)
        self.delay_s = delay_s
        self.api_key = api_key
        self.attempts: Counter = Counter()
        self.requests: list[dict] = []
        self.auth_headers: list[str | None] = []
        self.host_headers: list[str | None] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reply_content(self, body: dict) -> str:
        messages = body["messages"]
        fmt = body.get("response_format") or {}
        schema = fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema") or default_schema(messages)
        words = sorted(set(_WORD.findall(_passage(messages))))
        return json.dumps(fill(schema, words, _digest(messages, body.get("seed"))))

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = _digest(body["messages"])
                with server._lock:
                    server.attempts[key] += 1
                    attempt = server.attempts[key]
                    server.requests.append(body)
                    server.auth_headers.append(self.headers.get("Authorization"))
                    server.host_headers.append(self.headers.get("Host"))
                if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    given = self.headers.get("Authorization", "")
                    return self._send(401, {"error": f"Incorrect API key provided: {given[7:]}"})  # as some servers do
                action = server.fault(body, attempt)
                if server.delay_s:
                    time.sleep(server.delay_s)
                if action is None:
                    return self._ok(server.reply_content(body))
                if action[0] == "status":
                    payload = action[3] if len(action) > 3 else {"error": "injected"}
                    return self._send(action[1], payload, action[2] if len(action) > 2 else {})
                if action[0] == "sleep":
                    time.sleep(action[1])
                    return self._ok(server.reply_content(body))
                if action[0] == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return None
                if action[0] == "malformed":
                    return self._raw(200, b'{"choices": [{"message": {"content": "{\\"trunc')
                if action[0] == "text":
                    return self._ok(action[1])
                if action[0] == "trickle":  # headers at once, then the body one byte every action[1] seconds
                    return self._trickle(server.reply_content(body), action[1])
                raise ValueError(action)

            def _ok(self, content: str) -> None:
                self._send(200, {"id": "x", "object": "chat.completion", "model": "fault",
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                              "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": 50, "completion_tokens": max(1, len(content) // 4)}})

            def _trickle(self, content: str, seconds_per_byte: float) -> None:
                data = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]})
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data.encode())))
                    self.end_headers()
                    self.wfile.flush()
                    for byte in data.encode():
                        time.sleep(seconds_per_byte)
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up

            def _send(self, code: int, payload: dict, headers: dict | None = None) -> None:
                self._raw(code, json.dumps(payload).encode(), headers)

            def _raw(self, code: int, data: bytes, headers: dict | None = None) -> None:
                try:
                    self._write(code, data, headers)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout under test)

            def _write(self, code: int, data: bytes, headers: dict | None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler
