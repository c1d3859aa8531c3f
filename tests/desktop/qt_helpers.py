"""Waiting for jobs in desktop tests (imported by the test modules)."""
from __future__ import annotations

from pathlib import Path

SAMPLE_DOCS = Path(__file__).resolve().parents[2] / "resources" / "sample" / "docs"


def wait_for_job(qtbot, job, timeout_s: float = 120) -> str:
    qtbot.waitUntil(lambda: not job.running, timeout=int(timeout_s * 1000))
    return job.record.state


def wait_for_event(qtbot, job, kind: str, timeout_s: float = 60) -> dict:
    seen: list[dict] = []
    job.event.connect(lambda event: seen.append(event) if event["event"] == kind else None)
    qtbot.waitUntil(lambda: bool(seen) or not job.running, timeout=int(timeout_s * 1000))
    assert seen, f"the job ended ({job.record.state}: {job.record.message}) before any {kind} event"
    return seen[0]
