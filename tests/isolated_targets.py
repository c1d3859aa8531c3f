"""Objects and functions for the isolation tests: importable by name, so a spawned child can build them."""
from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Iterator

from doctune.core.errors import UserError


class Refused(UserError):
    """A user error raised in a child: it must reach the parent with its hints."""


class Counter:
    def __init__(self, start: int) -> None:
        self.value = start

    def add(self, amount: int) -> int:
        self.value += amount
        return self.value

    def count_up(self, limit: int) -> Iterator[int]:
        yield from range(limit)

    def fail(self, message: str) -> None:
        raise ValueError(message)

    def refuse(self) -> None:
        raise Refused("No model file.", "pass --model", window_hint="press Choose…")

    def pid(self) -> int:
        return os.getpid()

    def segfault(self) -> None:
        ctypes.string_at(0)  # reads address 0: a real SIGSEGV in native code


def crash_on_quantized(path, *args):
    """Stands in for a llama.cpp that crashes on quantized files on this processor (the AMX fault)."""
    from doctune.core.export import verify

    if "f16" not in path.name:
        os.kill(os.getpid(), signal.SIGSEGV)
    return verify._run_checks(path, *args)
