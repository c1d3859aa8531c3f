"""The knowledge lab's default point, in CI: DocTune's real pipeline with a new project's settings (the lab reader
as the student brings the training settings measured for it; synthesis at the default amount) teaches the reader
new documents. A smaller world than ``bench/knowledge.py --quick`` (which sets the figures), same code path."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ENTITIES = 12
MARGIN = 0.2
"""Tuned over base on held-out multiple choice, closed book (36 questions; the bench's 30 documents show more)."""


def _bench():
    spec = importlib.util.spec_from_file_location("bench_knowledge", ROOT / "bench" / "knowledge.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the first test to use the reader builds it (~25 minutes on two cores)
def test_at_the_default_settings_the_tuned_reader_knows_new_documents_clearly_better_than_before(tmp_path, lab_reader):
    from doctune.core.lab.offline import with_recommended_settings

    bench = _bench()
    outcome = bench.run_point(bench.DEFAULT_POINT, with_recommended_settings(lab_reader), tmp_path,
                              seed=bench.WORLD_SEED + 100, n_entities=ENTITIES)
    scores = {name: figures["accuracy"] for name, figures in outcome["scores"].items()}
    assert all(step["status"] == "done" for step in outcome["steps"]), outcome["steps"]
    assert outcome["scores"]["tuned"]["n"] >= 3 * ENTITIES - 3  # the leakage check may drop one or two
    assert scores["base"] <= bench.TARGETS["base_max"] + 0.1, scores  # it cannot guess facts it never read
    assert scores["tuned"] >= scores["base"] + MARGIN, scores
    assert abs(scores["tuned_q8_0"] - scores["tuned"]) <= 0.1, scores
