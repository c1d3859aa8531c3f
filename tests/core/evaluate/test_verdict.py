"""The scoreboard's verdict in words: tuned vs retrieval, with the interval and p, or 'too few to tell'."""
from __future__ import annotations

from doctune.core.evaluate.summary import summarize
from doctune.core.evaluate.verdict import answer_costs, system_label, tuning_cost, verdict


def _summary(tuned_right: list[bool], rag_right: list[bool]) -> dict:
    records = []
    for index, (tuned, rag) in enumerate(zip(tuned_right, rag_right)):
        for system, right in (("tuned", tuned), ("base+rag", rag)):
            records.append({"question_id": f"q{index}", "system": system, "kind": "mc", "total_s": 0.5,
                            "context_tokens": 80 if system == "tuned" else 900,
                            "mc": {"likelihood_correct": right, "letter": "A", "letter_correct": right}})
    ids = [f"q{i}" for i in range(len(tuned_right))]
    return summarize(records, eval_id="e1", systems=["base", "base+rag", "tuned", "tuned+rag"], question_ids=ids,
                     skipped={"base": "no student"}, comparisons=[("tuned", "base+rag")])


def test_a_clear_win_is_said_in_points_with_interval_and_p():
    text = verdict(_summary([True] * 45 + [False] * 15, [True] * 25 + [False] * 35))
    assert text.startswith("The tuned model answers 33 points more questions than retrieval (95% interval +")
    assert "p < 0.001" in text and "p = <" not in text and "over 60 multiple-choice questions" in text


def test_a_loss_and_no_difference_are_said_plainly():
    assert "fewer questions than retrieval" in verdict(_summary([False] * 40 + [True] * 10, [True] * 50))
    assert verdict(_summary([True, False] * 20, [False, True] * 20)).startswith(
        "No clear difference between the tuned model and retrieval: +0 points")


def test_few_questions_are_too_few_to_tell():
    text = verdict(_summary([True, True, True], [False, False, True]))
    assert text.startswith("No clear difference yet: 3 multiple-choice questions are too few to tell the tuned model "
                           "from retrieval")


def test_a_missing_system_says_why():
    summary = _summary([True], [True])
    assert "Base model (closed book): no student" in verdict(summary, "base", "base+rag")


def test_labels_and_costs():
    assert system_label("tuned+rag") == "Tuned model + retrieval"
    assert system_label("/models/x-q8_0.gguf+rag") == "x-q8_0.gguf + retrieval"
    costs = answer_costs(_summary([True] * 4, [False] * 4))
    assert costs["tuned"] == {"seconds_per_answer": 0.5, "context_tokens_per_answer": 80}
    assert costs["base+rag"]["context_tokens_per_answer"] == 900


def test_tuning_cost_of_an_empty_project(project):
    assert tuning_cost(project) == {"items": 0, "teacher_tokens": 0, "teacher_seconds": 0, "train_seconds": None,
                                    "train_tokens": None}
