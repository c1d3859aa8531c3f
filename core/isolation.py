"""Native code in a child process: a crash there is an error here, never the end of this process.

llama.cpp can die of a machine-dependent fault (a segmentation fault in a CPU
kernel, an out-of-memory kill) that Python cannot catch. Whatever holds a
llama.cpp model for the window or a long step therefore lives in a child
process: :class:`ChildObject` builds ``factory(*args, **kwargs)`` there and
forwards method calls over a pipe. When the child dies, the call in progress
(and every later one) raises :class:`ChildCrashed`, which names the file and
the signal, and the caller carries on.

The child is started with the ``spawn`` method (a fresh interpreter: nothing of
the parent's threads, Qt or CUDA state is inherited), so ``factory`` and the
arguments must be picklable and importable at module level.
"""
from __future__ import annotations

import multiprocessing
import pickle
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from doctune.core.errors import UserError
from doctune.core.events import Cancelled, CancelToken

POLL_S = 0.05
"""How often a waiting call looks at its cancel token and at the child's health."""
STOP_GRACE_S = 5.0


class ChildCrashed(UserError):
    """The child process holding a native model died (a crash or a kill), not a Python error."""

    def __init__(self, message: str, hint: str | None = None, *, exit_code: int | None = None) -> None:
        super().__init__(message, hint)
        self.exit_code = exit_code


def describe_exit(exit_code: int | None) -> str:
    """``-11`` → ``"signal SIGSEGV (segmentation fault)"``; ``1`` → ``"exit code 1"``."""
    if exit_code is None:
        return "no exit code"
    if exit_code < 0:
        try:
            sig = signal.Signals(-exit_code)
        except ValueError:
            return f"signal {-exit_code}"
        meaning = signal.strsignal(sig) or ""
        return f"signal {sig.name}" + (f" ({meaning.lower()})" if meaning else "")
    return f"exit code {exit_code}"


def crash_message(what: str, path: Path | str, exit_code: int | None) -> ChildCrashed:
    """The plain-words error for a child that died while ``what`` (e.g. "evaluating this file") on ``path``."""
    name = Path(str(path)).name
    if exit_code is not None and exit_code > 0:  # Python itself stopped (its message is on stderr), not a crash
        return ChildCrashed(f"The model process for {name} stopped while {what} ({describe_exit(exit_code)}).",
                            hint="See the messages printed above it.", exit_code=exit_code)
    return ChildCrashed(
        f"llama.cpp crashed while {what} on this computer: {name} ({describe_exit(exit_code)}).",
        hint=("Another format of the model (F16) may work; the crash is in llama.cpp on this processor, "
              "and the rest of DocTune is unaffected."),
        exit_code=exit_code,
    )


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a ``RuntimeError`` with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 — any unpicklable exception becomes its text
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _send_error(conn: Any, exc: BaseException) -> None:
    conn.send(("error", _portable(exc)))  # pickling keeps a UserError's attributes (hint, window form)


def _serve(conn: Any, factory: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    """The child's loop: build the object, then answer calls until told to close or the pipe ends."""
    try:
        target = factory(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 — reported to the parent, which raises it
        _send_error(conn, exc)
        return
    conn.send(("ready", None))
    while True:
        try:
            kind, method, call_args, call_kwargs = conn.recv()
        except (EOFError, OSError):
            break
        if kind == "close":
            break
        if kind == "call":
            try:
                conn.send(("ok", getattr(target, method)(*call_args, **call_kwargs)))
            except BaseException as exc:  # noqa: BLE001
                _send_error(conn, exc)
        elif kind == "iterate":
            _serve_iteration(conn, getattr(target, method), call_args, call_kwargs)
    close = getattr(target, "close", None)
    if callable(close):
        close()


def _serve_iteration(conn: Any, method: Callable[..., Iterator], args: tuple, kwargs: dict) -> None:
    """Send each item of ``method(...)``; a ``cancel`` message from the parent stops it between items."""
    try:
        items = method(*args, **kwargs)
        for item in items:
            conn.send(("item", item))
            if conn.poll() and conn.recv()[0] == "cancel":
                items.close()
                conn.send(("cancelled", None))
                return
        conn.send(("end", None))
    except BaseException as exc:  # noqa: BLE001
        _send_error(conn, exc)


class ChildObject:
    """An object living in a child process; ``call`` and ``iterate`` run its methods there.

    ``label`` names the file the object holds and ``doing`` what a crash
    interrupted ("answering with this model"), for the error message. One call
    at a time (calls from several threads queue on a lock).
    """

    def __init__(self, factory: Callable[..., Any], *args: Any, label: Path | str, doing: str,
                 cancel: CancelToken | None = None, **kwargs: Any) -> None:
        self.label = label
        self.doing = doing
        self._lock = threading.Lock()
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(target=_serve, args=(child_conn, factory, args, kwargs), daemon=True,
                                        name=f"doctune-model-{Path(str(label)).name}")
        self._process.start()
        child_conn.close()
        self._dead: ChildCrashed | None = None
        self._stop_sent = False
        try:
            with self._lock:
                self._receive(cancel, cancel_kind="kill")
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._dead is None and self._process.is_alive()

    def call(self, method: str, *args: Any, cancel: CancelToken | None = None, **kwargs: Any) -> Any:
        """``method(*args, **kwargs)`` run in the child; ``cancel`` kills the child (the call has no safe point)."""
        with self._lock:
            self._send(("call", method, args, kwargs))
            self._stop_sent = False
            return self._receive(cancel, cancel_kind="kill")[1]

    def iterate(self, method: str, *args: Any, cancel: CancelToken | None = None, **kwargs: Any) -> Iterator[Any]:
        """Yield the items of ``method(...)`` run in the child; ``cancel`` stops it and raises ``Cancelled``."""
        with self._lock:
            self._send(("iterate", method, args, kwargs))
            self._stop_sent = False
            while True:
                kind, value = self._receive(cancel, cancel_kind="cancel")
                if kind == "item":
                    if self._stop_sent:  # sent before the child saw the stop: not wanted any more
                        continue
                    try:
                        yield value
                    except GeneratorExit:  # the caller stopped reading early: stop the child, drop what it sent
                        self._drain_after_cancel()
                        raise
                    continue
                if kind == "cancelled":
                    raise Cancelled()
                return

    def close(self) -> None:
        """Ask the child to finish; kill it if it does not within a few seconds."""
        if self._process.pid is None:
            return
        if self._process.is_alive():
            try:
                self._conn.send(("close", None, (), {}))
            except (OSError, ValueError):
                pass
            self._process.join(STOP_GRACE_S)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(STOP_GRACE_S)
        self._conn.close()

    def _drain_after_cancel(self) -> None:
        try:
            self._stop_sent = True
            self._send(("cancel", None, (), {}))
            while self._receive(None)[0] == "item":
                pass
        except (ChildCrashed, Exception):  # noqa: BLE001 — a child's own error after the stop is of no interest
            pass

    # ----- the pipe ------------------------------------------------------------------------------
    def _send(self, message: tuple) -> None:
        if self._dead is not None:
            raise self._dead
        try:
            self._conn.send(message)
        except (OSError, ValueError):
            raise self._crashed() from None

    def _receive(self, cancel: CancelToken | None, cancel_kind: str = "cancel") -> tuple[str, Any]:
        """The next message; a dead child raises ``ChildCrashed``, a child's exception is re-raised here.

        While waiting, a set ``cancel`` sends the child ``cancel_kind`` once (``cancel``: stop between items)
        or, for ``kill``, ends the child at once and raises ``Cancelled``.
        """
        while True:
            if cancel is not None and cancel.cancelled and not self._stop_sent:
                self._stop_sent = True
                if cancel_kind == "kill":  # loading, or one call with no safe point: nothing to keep
                    self._process.kill()
                    self._process.join(STOP_GRACE_S)
                    self._dead = ChildCrashed(f"Stopped while {self.doing}.")
                    raise Cancelled()
                self._send((cancel_kind, None, (), {}))
            try:
                ready = self._conn.poll(POLL_S)
            except (OSError, ValueError):
                raise self._crashed() from None
            if ready:
                try:
                    kind, value = self._conn.recv()
                except (EOFError, OSError):
                    raise self._crashed() from None
                if kind == "error":
                    raise value
                return kind, value
            if not self._process.is_alive():
                raise self._crashed()

    def _crashed(self) -> ChildCrashed:
        if self._dead is None:
            self._process.join(STOP_GRACE_S)
            self._dead = crash_message(self.doing, self.label, self._process.exitcode)
        return self._dead


class _FunctionRunner:
    """What a child hosts for :func:`run_isolated`: it calls the function it is given."""

    def run(self, function: Callable[..., Any], *args: Any) -> Any:
        return function(*args)


def run_isolated(function: Callable[..., Any], *args: Any, label: Path | str, doing: str,
                 cancel: CancelToken | None = None) -> Any:
    """``function(*args)`` in a fresh child process; its crash raises ``ChildCrashed``, ``cancel`` kills it.

    ``function`` must be defined at module level (it is pickled by name).
    """
    child = ChildObject(_FunctionRunner, label=label, doing=doing, cancel=cancel)
    try:
        return child.call("run", function, *args, cancel=cancel)
    finally:
        child.close()
