"""Synthesis throughput against a local llama_cpp.server, beside a bare client firing the same requests.

DocTune's pipeline (planning, prompt building, retries, JSON parsing, schema
check, filters, fsynced appends) runs the ``qa`` recipe over the sample
documents at concurrency 1, 2 and 4; the bare client then sends exactly the
request bodies DocTune sent, at the same concurrency, and only reads the
responses. The ratio DocTune ÷ bare client shows what the pipeline adds to
the teacher's own cost (target ≥ 0.9). Each side is measured ``REPEATS`` times
per concurrency, alternating, and the best run counts (on a shared machine the
same request takes from under a second to half a minute). Because that noise
swamps the ratio, each level also reports ``idle_share``: the share of
DocTune's wall time during which no request was in flight, i.e. the time the
pipeline itself spent, which the noise cannot inflate.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "core" / "teachers"))

from llama_server import llama_server  # noqa: E402

from doctune.core.events import CancelToken, Events  # noqa: E402
from doctune.core.project import Project  # noqa: E402
from doctune.core.synth import SynthParams, run  # noqa: E402
from doctune.core.teachers.api import ApiTeacher  # noqa: E402

CONCURRENCY = (1, 2, 4)
REPEATS = 4
DOCS = 6
PER_CHUNK = 2
TARGET = 0.9


class RecordingTeacher(ApiTeacher):
    """The real endpoint teacher, keeping a copy of each request body for the bare client."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.bodies: list[dict] = []
        self.intervals: list[tuple[float, float]] = []

    def _post_once(self, body, avoid=None):
        self.bodies.append(body)
        started = time.perf_counter()
        try:
            return super()._post_once(body, avoid)
        finally:
            self.intervals.append((started, time.perf_counter()))


def covered(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of time intervals (time with at least one request in flight)."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def tiny_teacher_gguf(work: Path) -> Path:
    from doctune.core.export.gguf import write_gguf
    from doctune.core.tiny import ensure_tiny_model

    return write_gguf(ensure_tiny_model("qwen2", work / "tiny"), work / "teacher.gguf")


def ingested_project(work: Path) -> Project:
    from doctune.core.ingest import IngestParams
    from doctune.core.ingest import run as ingest

    project = Project.create(work / "template")
    docs = sorted((ROOT / "resources" / "sample" / "docs").glob("*.md"))[:DOCS]
    ingest(IngestParams(project_dir=project.root, paths=docs), events=Events(), cancel=CancelToken())
    synth = project.config.synth
    synth.recipes, synth.per_chunk, synth.grounding = {"qa": 1.0}, PER_CHUNK, "off"
    synth.max_question_chars = synth.max_answer_chars = 20
    project.save()
    return project


def doctune_run(template: Project, base_url: str, concurrency: int, work: Path) -> tuple[float, int, list[dict], float]:
    folder = Path(tempfile.mkdtemp(dir=work))
    shutil.copytree(template.root, folder / "p")
    teacher = RecordingTeacher(base_url, "tiny", concurrency=concurrency, timeout_s=300, structured_output="llama_cpp")
    started = time.perf_counter()
    result = run(SynthParams(project_dir=folder / "p"), events=Events(), cancel=CancelToken(), teacher=teacher)
    seconds = time.perf_counter() - started
    teacher.close()
    shutil.rmtree(folder)
    if result.failed:
        raise RuntimeError(f"{result.failed} request(s) failed during the benchmark")
    return seconds, result.generated + result.filtered, teacher.bodies, 1 - covered(teacher.intervals) / seconds


def bare_run(bodies: list[dict], base_url: str, concurrency: int) -> float:
    with httpx.Client(timeout=300, limits=httpx.Limits(max_connections=concurrency)) as client:
        def fire(body: dict) -> int:
            response = client.post(f"{base_url}/chat/completions", json=body)
            response.read()
            return response.status_code

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            codes = list(pool.map(fire, bodies))
        seconds = time.perf_counter() - started
    if any(code != 200 for code in codes):
        raise RuntimeError(f"bare client got statuses {sorted(set(codes))}")
    return seconds


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="doctune-bench-synth-") as tmp:
        work = Path(tmp)
        model = tiny_teacher_gguf(work)
        template = ingested_project(work)
        curve: dict[str, dict] = {}
        with llama_server(model, threads=2) as base_url:
            doctune_run(template, base_url, 1, work)  # warm-up, not counted
            for concurrency in CONCURRENCY:
                best_doctune = best_bare = 0.0
                idle = []
                for _ in range(REPEATS):
                    seconds, items, bodies, idle_share = doctune_run(template, base_url, concurrency, work)
                    best_doctune = max(best_doctune, items / seconds)
                    idle.append(idle_share)
                    best_bare = max(best_bare, len(bodies) / bare_run(bodies, base_url, concurrency))
                curve[str(concurrency)] = {"doctune_items_per_s": round(best_doctune, 3),
                                           "bare_items_per_s": round(best_bare, 3),
                                           "ratio": round(best_doctune / best_bare, 3), "items": items,
                                           "idle_share": round(max(idle), 4)}
                print(f"concurrency {concurrency}: {curve[str(concurrency)]}", file=sys.stderr, flush=True)
    ratios = [point["ratio"] for point in curve.values()]
    worst_idle = max(point["idle_share"] for point in curve.values())
    print(json.dumps({"bench": "synth", "teacher": "llama_cpp.server, tiny qwen2 F16 GGUF", "recipe": "qa",
                      "baseline": "bare httpx client, same request bodies, same concurrency",
                      "curve": curve, "min_ratio": min(ratios), "max_idle_share": worst_idle, "target": TARGET,
                      "meets_target": min(ratios) >= TARGET, "pipeline_bound": round(1 - worst_idle, 4)}))


if __name__ == "__main__":
    main()
