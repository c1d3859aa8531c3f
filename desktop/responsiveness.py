"""Measuring how long the event loop was blocked: a timer probe.

A 10 ms ``QTimer`` notes the gap between its ticks; the longest gap is the
longest time the loop could not react. On a busy machine part of a gap is
time the operating system did not run this process at all (other programs had
the cores); on Linux that share is read from ``/proc/.../schedstat`` (time
spent waiting on a run queue) and reported apart, so the figure that counts —
``longest_blocked_s`` — is what this process itself spent not returning to the
loop.

The loop's thread can also wait for the GIL while another Python thread of the
process (a background import) holds it; when that thread is itself waiting on
a run queue, the time is the machine's too. So the share left out of a gap is
the larger of the loop thread's run-queue wait and that of any other thread
started with ``threading`` (never their sum: they may overlap).
"""
from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QEventLoop, QTimer

SCHEDSTAT = Path("/proc/thread-self/schedstat")
TASKS = Path("/proc/self/task")


def _schedstat_wait_s(path: Path) -> float:
    try:
        return int(path.read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def run_queue_wait_s() -> float:
    """Seconds this thread has waited for a CPU since it started (0 where the OS does not say)."""
    return _schedstat_wait_s(SCHEDSTAT)


def other_python_threads_wait_s() -> dict[int, float]:
    """Run-queue wait of every other thread this process started with ``threading``, by native thread id.

    Threads Qt started (a thread pool's chat worker) are left out, even when Python code visits them: they
    mostly run without the GIL (llama.cpp), so their waits say nothing about the loop's.
    """
    current = threading.get_native_id()
    return {thread.native_id: _schedstat_wait_s(TASKS / str(thread.native_id) / "schedstat")
            for thread in threading.enumerate()
            if thread.native_id not in (None, current) and not isinstance(thread, threading._DummyThread)}


class StallProbe:
    def __init__(self, interval_ms: int = 10) -> None:
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.longest_gap_s = 0.0
        self.longest_blocked_s = 0.0
        self._last = time.perf_counter()
        self._last_wait = run_queue_wait_s()
        self._last_others = other_python_threads_wait_s()

    def start(self) -> None:
        self._last = time.perf_counter()
        self._last_wait = run_queue_wait_s()
        self._last_others = other_python_threads_wait_s()
        self.timer.start()

    def _tick(self) -> None:
        now, wait, others = time.perf_counter(), run_queue_wait_s(), other_python_threads_wait_s()
        gap = now - self._last
        waited = max([wait - self._last_wait] + [others[tid] - self._last_others[tid]
                                                 for tid in others.keys() & self._last_others.keys()])
        self.longest_gap_s = max(self.longest_gap_s, gap)
        self.longest_blocked_s = max(self.longest_blocked_s, gap - waited)
        self._last, self._last_wait, self._last_others = now, wait, others

    def stop(self) -> StallProbe:
        self.timer.stop()
        return self


def run_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Run the event loop (as ``app.exec()`` would) until ``condition()`` holds or ``timeout_s`` passes."""
    loop = QEventLoop()
    deadline = time.perf_counter() + timeout_s
    check = QTimer()
    check.setInterval(5)
    check.timeout.connect(lambda: loop.quit() if condition() or time.perf_counter() > deadline else None)
    check.start()
    loop.exec()
    check.stop()
    return condition()


def page_opening_stall(project: Path, settings_file: Path, page_keys: Sequence[str] = ("train", "evaluate"),
                       timeout_s: float = 30.0) -> dict:
    """Open the window on ``project``, then — right after its first paint — each page of ``page_keys`` in turn,
    waiting until the page's plots are built; the longest event-loop stall meanwhile.

    Meaningful in a fresh process: what is measured is mostly the first import of the plotting library.
    """
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from doctune.desktop.theme import apply_theme
    from doctune.desktop.widgets import LazyPlot
    from doctune.desktop.window import MainWindow

    app = QApplication.instance() or QApplication([])
    imported_before = "pyqtgraph" in sys.modules
    apply_theme(app)
    window = MainWindow(QSettings(str(settings_file), QSettings.Format.IniFormat))
    window.resize(1280, 860)
    window.open_project(project)
    window.show_welcome()
    window.show()
    run_until(lambda: window.painted, timeout_s)
    probe = StallProbe()
    probe.start()
    started = time.perf_counter()
    plots_built_s = {}
    for key in page_keys:
        page = window.page(key)
        window.show_page(window.pages.index(page))
        plots = page.findChildren(LazyPlot)
        built = run_until(lambda plots=plots: all(plot.widget is not None for plot in plots), timeout_s)
        plots_built_s[key] = round(time.perf_counter() - started, 3) if built else None
    run_until(lambda: False, 0.3)  # the plots' first paint follows their build
    probe.stop()
    window.close()
    return {"pyqtgraph_imported_before": imported_before, "plots_built_s": plots_built_s,
            "longest_blocked_ms": round(probe.longest_blocked_s * 1000, 1),
            "longest_gap_ms": round(probe.longest_gap_s * 1000, 1),
            "qobjects_off_gui_thread": qobjects_off_thread(app.thread())}


def qobjects_off_thread(thread) -> list[str]:
    """Python-visible Qt objects that live in another thread than ``thread`` (none may after a background import)."""
    import gc

    from PySide6.QtCore import QObject

    return [type(obj).__name__ for obj in gc.get_objects() if isinstance(obj, QObject) and obj.thread() is not thread]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m doctune.desktop.responsiveness PROJECT SETTINGS.ini``: ``page_opening_stall`` as one JSON line."""
    project, settings_file = (argv if argv is not None else sys.argv[1:])[:2]
    print(json.dumps(page_opening_stall(Path(project), Path(settings_file))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
