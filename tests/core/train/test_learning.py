"""The tiny students really learn the 40 fictional QA pairs (greedy exact match ~0% → ≥ 90%)."""
from __future__ import annotations

import pytest
from train_helpers import greedy_exact_match, sample_qa

from doctune.core.events import CancelToken, Events
from doctune.core.train import TrainParams, run


@pytest.mark.slow
@pytest.mark.parametrize("family,overrides", [
    ("qwen2", {"max_steps": 300, "learning_rate": 3e-3}),  # LoRA alone
    ("llama", {"max_steps": 150, "learning_rate": 3e-3, "train_embeddings": True}),  # embeddings + output train too
])
def test_tiny_student_learns_the_sample_qa_pairs(project, tiny_model, qa_items_file, family, overrides):
    student = tiny_model(family)
    records = sample_qa()
    assert greedy_exact_match(student, None, records) <= 0.05
    params = TrainParams(project_dir=project.root, items_file=qa_items_file, student={"model": str(student)},
                         train={"replay_fraction": 0.0, "batch_tokens": 512, "warmup_ratio": 0.0,
                                "lr_scheduler": "constant", "checkpoint_every": 1000, **overrides})
    result = run(params, events=Events(), cancel=CancelToken())
    assert greedy_exact_match(student, result.adapter_dir, records) >= 0.9
