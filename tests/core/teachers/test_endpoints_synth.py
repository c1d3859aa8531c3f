"""Synthesis over three real llama_cpp.server processes on 127.0.0.1, one of them killed mid-run."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from llama_server import llama_servers
from project_helpers import ingest

from doctune.core.events import CancelToken, Events
from doctune.core.records import ProjectLayout
from doctune.core.synth import SynthParams, run
from doctune.core.teachers import open_teacher

SAMPLE_DOCS = Path(__file__).parents[3] / "resources" / "sample" / "docs"


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


@pytest.mark.slow
def test_synthesis_survives_a_server_dying_mid_run_nothing_lost_nothing_duplicated(project, tiny_gguf):
    ingest(project, sorted(SAMPLE_DOCS.glob("*.md"))[:2])
    synth = project.config.synth
    synth.recipes, synth.per_chunk = {"qa": 1.0}, 6
    synth.amplification = 0.0  # per_chunk items, not the default amount
    synth.max_question_chars = synth.max_answer_chars = 20
    synth.grounding = "off"  # the tiny model writes noise; this test is about transport and bookkeeping
    layout = ProjectLayout(Path(project.root))
    with llama_servers(tiny_gguf("qwen2"), 3, threads=1) as servers:
        teacher_settings = project.config.teacher
        teacher_settings.kind, teacher_settings.model = "openai", "test"
        teacher_settings.base_urls = [url for url, _process in servers]
        for key, value in {"structured_output": "llama_cpp", "concurrency": 1, "timeout_s": 60.0,
                           "max_retries": 2, "retry_base_s": 0.05, "retry_max_s": 0.2}.items():
            setattr(teacher_settings, key, value)
        project.save()
        teacher = open_teacher(project)
        assert teacher.concurrency == 3
        seen_at_kill: list[int] = []

        def kill_the_second_once_it_served() -> None:
            deadline = time.monotonic() + 120
            while teacher.endpoint_stats()[1].served < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            servers[1][1].kill()  # SIGKILL: no goodbye, requests in flight on it are cut
            seen_at_kill.append(len(lines(layout.items)))

        killer = threading.Thread(target=kill_the_second_once_it_served, daemon=True)
        killer.start()
        try:
            result = run(SynthParams(project_dir=project.root), events=Events(), cancel=CancelToken(), teacher=teacher)
        finally:
            killer.join(timeout=130)
            stats = teacher.endpoint_stats()
            teacher.close()
    assert seen_at_kill and seen_at_kill[0] < result.planned  # killed while items were still to come
    assert not stats[1].up and stats[1].times_down >= 1 and stats[1].served >= 1
    assert stats[0].served > 0 and stats[2].served > 0, stats  # every live server took a share
    items, outcomes = lines(layout.items), lines(layout.item_outcomes)
    item_ids = [item["id"] for item in items]
    assert len(item_ids) == len(set(item_ids)) == result.generated  # nothing duplicated
    failed = {o["id"] for o in outcomes if o["outcome"] == "failed"}
    filtered = {o["id"] for o in outcomes if o["outcome"] == "filtered"}
    assert result.planned == 12 and result.failed == len(failed) == 0, (result, outcomes)
    assert set(item_ids).isdisjoint(filtered) and len(item_ids) + len(filtered) == 12  # nothing lost
    again = run(SynthParams(project_dir=project.root, dry_run=True), events=Events(), cancel=CancelToken())
    assert again.already_done == 12 and again.estimate["items"] == 0
