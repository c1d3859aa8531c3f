"""Native code in a child process: a crash or a kill there is an error here, naming the file and the signal."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from isolated_targets import Counter

from doctune.core.events import Cancelled, CancelToken
from doctune.core.isolation import ChildCrashed, ChildObject, describe_exit, run_isolated


@pytest.fixture
def counter():
    child = ChildObject(Counter, 10, label="counter.gguf", doing="counting")
    yield child
    child.close()


def test_calls_and_iterations_run_in_the_child(counter):
    assert counter.call("add", 5) == 15
    assert counter.call("add", 1) == 16
    assert counter.call("pid") == counter.pid != os.getpid()
    assert list(counter.iterate("count_up", 4)) == [0, 1, 2, 3]


def test_a_python_error_in_the_child_is_raised_here_and_the_child_lives_on(counter):
    with pytest.raises(ValueError, match="no such thing"):
        counter.call("fail", "no such thing")
    assert counter.call("add", 0) == 10


def test_a_user_error_in_the_child_keeps_its_advice(counter):
    from isolated_targets import Refused

    with pytest.raises(Refused) as refused:
        counter.call("refuse")
    assert (refused.value.hint, refused.value.window_hint) == ("pass --model", "press Choose…")


def test_a_segfault_in_the_child_is_an_error_naming_the_file_and_signal(counter):
    with pytest.raises(ChildCrashed) as crash:
        counter.call("segfault")
    assert "llama.cpp crashed while counting on this computer: counter.gguf" in str(crash.value)
    assert "SIGSEGV" in str(crash.value) and crash.value.exit_code == -signal.SIGSEGV
    with pytest.raises(ChildCrashed):  # every later call says the same, without hanging
        counter.call("add", 1)


def test_a_killed_child_ends_an_iteration_with_an_error(counter):
    items = counter.iterate("count_up", 10_000_000)
    assert next(items) == 0
    os.kill(counter.pid, signal.SIGKILL)
    with pytest.raises(ChildCrashed, match="SIGKILL"):
        for _ in items:
            pass


def test_cancel_stops_an_iteration_and_leaves_the_child_usable(counter):
    cancel = CancelToken()
    seen = []
    with pytest.raises(Cancelled):
        for number in counter.iterate("count_up", 10_000_000, cancel=cancel):
            seen.append(number)
            if number == 5:
                cancel.cancel()
    assert seen[:6] == [0, 1, 2, 3, 4, 5]
    assert counter.call("add", 2) == 12


def test_stopping_to_read_early_drops_the_rest_of_an_iteration(counter):
    for number in counter.iterate("count_up", 10_000_000):
        if number == 3:
            break
    assert counter.call("add", 3) == 13  # no stale item answers this call


def test_a_cancelled_call_kills_the_child():
    cancel = CancelToken()
    threading.Timer(0.5, cancel.cancel).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        run_isolated(time.sleep, 60, label="sleeper", doing="sleeping", cancel=cancel)
    assert time.monotonic() - started < 20


def test_run_isolated_returns_the_result_or_the_crash():
    assert run_isolated(divmod, 17, 5, label="x", doing="dividing") == (3, 2)
    with pytest.raises(ChildCrashed, match="SIGABRT"):
        run_isolated(os.abort, label="abort.gguf", doing="aborting")


def test_exit_descriptions():
    assert describe_exit(-11).startswith("signal SIGSEGV")
    assert describe_exit(3) == "exit code 3"
