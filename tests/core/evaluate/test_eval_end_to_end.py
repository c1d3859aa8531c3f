"""End to end on tiny models: train the student on the fictional facts, export it, score all four systems.

The tuned student must pick the right option of the held-out multiple-choice
questions more often than its base (by likelihood), the report must show it,
and the report must render in headless Chromium.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from eval_helpers import sample_questions, write_questions

from doctune.core.events import CancelToken, Events
from doctune.core.resources import resource_path

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]  # training takes minutes on a shared 2-core machine


def train_items(project) -> None:
    lines = resource_path("sample/questions.jsonl").read_text(encoding="utf-8").splitlines()
    records = []
    for raw in map(json.loads, lines):
        records.append({"id": f"train-{raw['id']}", "kind": "qa", "chunk_id": raw["doc"], "recipe": "qa",
                        "messages": [{"role": "user", "content": raw["question"]},
                                     {"role": "assistant", "content": raw["answer"]}]})
    (Path(project.synth_dir) / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_model):
    """A project taken through ingest, index, train, export and eval; returns (project, result, report path)."""
    from doctune.core import evaluate, export, ingest, rag, train
    from doctune.core.project import Project

    project = Project.create(tmp_path_factory.mktemp("e2e") / "project", name="Fictional facts")
    config = project.config
    config.student.model = str(tiny_model("qwen2"))
    config.train.replay_fraction = 0.0
    config.train.train_embeddings = True
    config.train.learning_rate = 3e-3
    config.train.max_steps = 60
    config.train.batch_tokens = 512
    config.train.checkpoint_every = 1000
    config.export.formats = ["f16"]
    config.rag.gguf_format = "f16"
    config.rag.n_ctx = 1024
    config.rag.k = 1
    config.rag.max_answer_tokens = 16
    config.eval.mc_answer_tokens = 8
    project.save()
    events, cancel = Events(), CancelToken()
    ingest.run(ingest.IngestParams(project_dir=project.root, paths=[resource_path("sample/docs")]), events=events,
               cancel=cancel)
    rag.run(rag.IndexParams(project_dir=project.root), events=events, cancel=cancel)
    train_items(project)
    trained = train.run(train.TrainParams(project_dir=project.root), events=events, cancel=cancel)
    export.run(export.ExportParams(project_dir=project.root, run_id=trained.run_id), events=events, cancel=cancel)
    mc = sample_questions(("mc",))
    open_ = sample_questions(("open",))[:4]
    write_questions(project, mc + open_)
    result = evaluate.run(evaluate.EvalParams(project_dir=project.root, judge=False), events=events, cancel=cancel)
    return project, result, evaluate.report(project)


def test_tuned_student_beats_its_base_by_likelihood(evaluated):
    project, result, _ = evaluated
    assert result.skipped == {}
    scores = result.summary["scores"]
    assert set(scores) == {"base", "base+rag", "tuned", "tuned+rag"}
    base, tuned = scores["base"]["mc_likelihood"], scores["tuned"]["mc_likelihood"]
    assert base["n"] == tuned["n"] == 40
    assert tuned["accuracy"] >= base["accuracy"] + 0.3, (base, tuned)
    assert tuned["ci95"][0] > base["accuracy"]
    (versus_base,) = [c for c in result.summary["comparisons"] if (c["a"], c["b"]) == ("tuned", "base")]
    assert versus_base["metrics"]["mc_likelihood"]["mcnemar"]["p_value"] < 0.01
    rag_records = [r for r in evaluate_results(project, result) if r["system"] == "base+rag"]
    assert all(r["sources"] for r in rag_records) and all(r["context_tokens"] > 0 for r in rag_records)


def evaluate_results(project, result) -> list[dict]:
    from doctune.core.evaluate import open_eval

    return open_eval(project, result.eval_id).results()


def test_report_shows_the_scoreboard(evaluated):
    project, result, path = evaluated
    html = path.read_text(encoding="utf-8")
    tuned = result.summary["scores"]["tuned"]["mc_likelihood"]
    assert f"{tuned['accuracy']:.1%}" in html
    assert html.count("<details class='question'>") == 44
    assert "id='chart-scoreboard'" in html and "class='chart-document'" in html


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium (/usr/bin/chromium): apt-get install -y chromium")
def test_report_renders_in_headless_chromium(evaluated, tmp_path):
    from PIL import Image

    _, _, path = evaluated
    shot = tmp_path / "report.png"
    completed = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr",
         "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1500",
         f"--screenshot={shot}", path.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert shot.exists(), completed.stderr[-2000:]
    assert "CONSOLE" not in completed.stderr and "Uncaught" not in completed.stderr, completed.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 1500)
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 50  # text, table and chart, not a blank page
    keep = Path(__file__).parent.parent.parent / ".artifacts" / "eval-report.png"
    shutil.copy(shot, keep)  # for a person to look at after the run
