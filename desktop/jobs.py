"""Long steps as child processes of the ``doctune`` CLI, followed through their event lines.

A :class:`Job` wraps one ``QProcess`` running ``doctune --events jsonl <command> -p DIR …``.
Stdout carries one JSON event per line (see ``doctune.core.events``); stderr is kept
as the job's technical log. The process is never waited on: everything arrives
through signals, so the window stays responsive whatever the job does.

Cancel sends SIGTERM (``QProcess.terminate``); the CLI stops at a safe point and
exits 130. A job that dies without a final event (killed, crashed, out of memory)
ends as ``failed`` with a plain message, so nothing ever waits forever.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from doctune.core.exitcodes import ExitCode

RUNNING, SUCCEEDED, PARTIAL, FAILED, CANCELLED = "running", "succeeded", "partial", "failed", "cancelled"


JOB_NICENESS = "10"
CANCEL_GRACE_MS = 120_000


def cli_program() -> tuple[str, list[str]]:
    """The program and leading arguments that run the ``doctune`` CLI in a child process."""
    if getattr(sys, "frozen", False):  # a PyInstaller build: the app binary dispatches --cli
        return sys.executable, ["--cli"]
    return sys.executable, ["-m", "doctune.core"]


def job_program() -> tuple[str, list[str]]:
    """Like :func:`cli_program`, at a lower CPU priority where ``nice`` exists.

    A job may keep every core busy for hours; the window must still get the CPU
    the moment it needs it. ``nice`` execs the CLI, so the process id (and the
    SIGTERM that cancels) is the CLI's own.
    """
    program, prefix = cli_program()
    nice = shutil.which("nice")
    return (nice, ["-n", JOB_NICENESS, program, *prefix]) if nice else (program, prefix)


@dataclass
class JobRecord:
    """What the job panel shows about one job."""

    title: str
    command: list[str]
    state: str = RUNNING
    started: float = field(default_factory=time.time)
    ended: float | None = None
    message: str = ""
    exit_code: int | None = None
    log: list[str] = field(default_factory=list)
    last_event: dict[str, Any] | None = None


class Job(QObject):
    """One CLI child process; emits each parsed event and, once, how it ended."""

    event = Signal(dict)
    log_line = Signal(str)
    finished = Signal(str)  # final state

    def __init__(self, title: str, args: list[str], project: Path | None, parent: QObject | None = None,
                 env: dict[str, str] | None = None) -> None:
        super().__init__(parent)
        program, prefix = job_program()
        command = [*prefix, "--events", "jsonl", *args]
        if project is not None:
            command += ["-p", str(project)]
        self.record = JobRecord(title=title, command=[program, *command])
        self._stdout_buffer = b""
        self._cancel_requested = False
        self._final_event: dict[str, Any] | None = None
        self.process = QProcess(self)
        environment = QProcessEnvironment.systemEnvironment()
        environment.insert("PYTHONUNBUFFERED", "1")
        for key, value in (env or {}).items():
            environment.insert(key, value)
        self.process.setProcessEnvironment(environment)
        self.process.setProgram(program)
        self.process.setArguments(command)
        self.process.readyReadStandardOutput.connect(self._read_stdout)
        self.process.readyReadStandardError.connect(self._read_stderr)
        self.process.finished.connect(self._on_finished)
        self.process.errorOccurred.connect(self._on_error)

    # ----- control -------------------------------------------------------------------
    def start(self) -> None:
        self._append_log("$ " + " ".join(self.record.command))
        self.process.start()

    def cancel(self) -> None:
        """Ask the job to stop at its next safe point (SIGTERM; the CLI exits 130).

        A job that has not stopped after ``CANCEL_GRACE_MS`` is killed (Windows console programs never
        receive ``terminate``); finished work is kept either way and re-running resumes it.
        """
        if self.running:
            self._cancel_requested = True
            self.record.message = "Stopping at the next safe point…"
            self.process.terminate()
            QTimer.singleShot(CANCEL_GRACE_MS, self.kill)

    def kill(self) -> None:
        if self.running:
            self.process.kill()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_requested

    @property
    def running(self) -> bool:
        return self.record.state == RUNNING

    @property
    def pid(self) -> int:
        return int(self.process.processId())

    # ----- reading -------------------------------------------------------------------
    def _read_stdout(self) -> None:
        self._stdout_buffer += bytes(self.process.readAllStandardOutput())
        *lines, self._stdout_buffer = self._stdout_buffer.split(b"\n")
        for raw in lines:
            self._handle_line(raw.decode("utf-8", errors="replace").strip())

    def _handle_line(self, line: str) -> None:
        if not line:
            return
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            self._append_log(line)
            return
        if not isinstance(event, dict) or "event" not in event:
            self._append_log(line)
            return
        self.record.last_event = event
        if event["event"] in ("done", "cancelled") or (event["event"] == "error" and event.get("fatal")):
            self._final_event = event
        if event.get("message") and event["event"] != "progress":
            self._append_log(f"[{event['event']}] {event['message']}")
        if event["event"] == "progress" and event.get("message"):
            self.record.message = str(event["message"])
        self.event.emit(event)

    def _read_stderr(self) -> None:
        text = bytes(self.process.readAllStandardError()).decode("utf-8", errors="replace")
        for line in text.splitlines():
            if line.strip():
                self._append_log(line)

    def _append_log(self, line: str) -> None:
        self.record.log.append(line)
        self.log_line.emit(line)

    # ----- ending --------------------------------------------------------------------
    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        self._read_stdout()
        if self._stdout_buffer:
            self._handle_line(self._stdout_buffer.decode("utf-8", errors="replace").strip())
            self._stdout_buffer = b""
        crashed = exit_status == QProcess.ExitStatus.CrashExit
        self._end(*self._outcome(None if crashed else exit_code))

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self.running:
            self._end(FAILED, f"The job could not start: {self.process.errorString()}")

    def _outcome(self, exit_code: int | None) -> tuple[str, str]:
        final = self._final_event or {}
        self.record.exit_code = exit_code
        from doctune.core.errors import event_window_text

        said = event_window_text(final) if final.get("message") or final.get("window_message") else ""
        if exit_code is None:
            if self._cancel_requested and final.get("event") == "cancelled":
                return CANCELLED, said or "Cancelled."
            return FAILED, ("The job stopped unexpectedly (the process was killed or crashed) before finishing. "
                            "Finished work is kept; run the step again to resume.")
        if exit_code == 0:
            return SUCCEEDED, said or "Finished."
        if exit_code == ExitCode.PARTIAL:
            return PARTIAL, said or "Finished, but some inputs failed (see the log)."
        if exit_code == ExitCode.CANCELLED:
            return CANCELLED, said or "Cancelled."
        if final.get("event") == "error":  # the message in the window's words: page and button, not the command
            return FAILED, said
        return FAILED, f"The job failed (exit code {exit_code}). The log has the details."

    def _end(self, state: str, message: str) -> None:
        if not self.running:
            return
        self.record.state = state
        self.record.message = message
        self.record.ended = time.time()
        self._append_log(f"[{state}] {message}")
        self.finished.emit(state)


class JobRunner(QObject):
    """Starts jobs for one window and keeps the list the job panel shows."""

    job_added = Signal(object)
    job_changed = Signal(object)

    def __init__(self, parent: QObject | None = None, env: dict[str, str] | None = None) -> None:
        super().__init__(parent)
        self.jobs: list[Job] = []
        self.env = env or {}

    def start(self, title: str, args: list[str], project: Path | None) -> Job:
        job = Job(title, args, project, self, env=self.env)
        self.jobs.append(job)
        job.event.connect(lambda _event, job=job: self.job_changed.emit(job))
        job.finished.connect(lambda _state, job=job: self.job_changed.emit(job))
        self.job_added.emit(job)
        job.start()
        return job

    def running(self) -> list[Job]:
        return [job for job in self.jobs if job.running]

    def cancel_all_then(self, done: Callable[[], None], grace_ms: int = 15000) -> None:
        """Cancel every running job without blocking the event loop; call ``done`` once none runs.

        A job still running after ``grace_ms`` is killed (its finished work is kept, as after any crash).
        """
        running = self.running()
        if not running:
            done()
            return
        state = {"called": False}

        def check(_state: str = "") -> None:
            if not self.running() and not state["called"]:
                state["called"] = True
                done()

        for job in running:
            job.finished.connect(check)
            job.cancel()
        QTimer.singleShot(grace_ms, lambda: [job.kill() for job in self.running()])

    def cancel_all(self, wait_ms: int = 15000) -> None:
        """Cancel every running job and give each time to stop gracefully (used on close)."""
        for job in self.running():
            job.cancel()
        for job in self.running():
            if not job.process.waitForFinished(wait_ms):
                job.kill()
                job.process.waitForFinished(2000)
