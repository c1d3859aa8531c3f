import io
import json
import threading

import pytest

from doctune.core.events import Cancelled, CancelToken, Events, JsonlSink, RecordingSink


def test_jsonl_sink_writes_one_object_per_line():
    stream = io.StringIO()
    events = Events(JsonlSink(stream), stage="ingest")
    events.progress(1, 4, "a.pdf", unit="files")
    events.error("cannot read", path="b.pdf", hint="check permissions")
    events.done("finished", ok=3)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["progress", "error", "done"]
    assert lines[0] | {"time": 0} == {"event": "progress", "stage": "ingest", "time": 0, "done": 1, "total": 4,
                                        "message": "a.pdf", "unit": "files"}
    assert lines[1]["path"] == "b.pdf" and lines[1]["hint"] == "check permissions"
    assert lines[2]["ok"] == 3


def test_unknown_event_kind_is_refused():
    with pytest.raises(ValueError):
        Events(RecordingSink()).emit("bogus")


def test_tracker_reports_rate_and_eta():
    sink = RecordingSink()
    tracker = Events(sink, "synth").tracker(total=10, unit="items")
    tracker.min_interval = 0
    for _ in range(10):
        tracker.advance()
    last = sink.of("progress")[-1]
    assert last["done"] == 10 and last["total"] == 10 and last["eta_s"] == 0
    assert last["rate"] > 0 and last["unit"] == "items"


def test_tracker_throttles_but_always_sends_the_last_unit():
    sink = RecordingSink()
    tracker = Events(sink).tracker(total=1000)
    tracker.min_interval = 3600
    for _ in range(1000):
        tracker.advance()
    assert 1 <= len(sink.of("progress")) <= 2
    assert sink.of("progress")[-1]["done"] == 1000


def test_cancel_token_across_threads():
    token = CancelToken()
    threading.Timer(0.05, token.cancel).start()
    assert token.wait(5) is True
    with pytest.raises(Cancelled):
        token.raise_if_cancelled()
