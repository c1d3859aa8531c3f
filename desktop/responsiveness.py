"""Measuring how long the event loop was blocked: a timer probe.

A 10 ms ``QTimer`` notes the gap between its ticks; the longest gap is the
longest time the loop could not react. On a busy machine part of a gap is
time the operating system did not run this process at all (other programs had
the cores); on Linux that share is read from ``/proc/thread-self/schedstat``
(time spent waiting on a run queue) and reported apart, so the figure that
counts — ``longest_blocked_s`` — is what this process itself spent not
returning to the loop.
"""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QTimer

SCHEDSTAT = Path("/proc/thread-self/schedstat")


def run_queue_wait_s() -> float:
    """Seconds this thread has waited for a CPU since it started (0 where the OS does not say)."""
    try:
        return int(SCHEDSTAT.read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


class StallProbe:
    def __init__(self, interval_ms: int = 10) -> None:
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.longest_gap_s = 0.0
        self.longest_blocked_s = 0.0
        self._last = time.perf_counter()
        self._last_wait = run_queue_wait_s()

    def start(self) -> None:
        self._last = time.perf_counter()
        self._last_wait = run_queue_wait_s()
        self.timer.start()

    def _tick(self) -> None:
        now, wait = time.perf_counter(), run_queue_wait_s()
        gap = now - self._last
        self.longest_gap_s = max(self.longest_gap_s, gap)
        self.longest_blocked_s = max(self.longest_blocked_s, gap - (wait - self._last_wait))
        self._last, self._last_wait = now, wait

    def stop(self) -> "StallProbe":
        self.timer.stop()
        return self
