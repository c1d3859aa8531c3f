"""The answer to the question DocTune asks, in words: does the tuned model beat retrieval, and what does it cost?

``verdict(summary)`` reads the paired comparison of the tuned model (closed
book) with the base model plus retrieval from an evaluation summary and says
who answers more questions, by how many points, with the 95% interval and the
exact McNemar p — or that the questions are too few to tell.
``tuning_cost(project)`` gathers the one-time price of tuning (teacher tokens
and time, training time) that the per-answer savings of a closed-book model pay
back.
"""
from __future__ import annotations

from typing import Any

SYSTEM_LABELS = {
    "base": "Base model (closed book)",
    "base+rag": "Base model + retrieval",
    "tuned": "Tuned model (closed book)",
    "tuned+rag": "Tuned model + retrieval",
}
SHORT_LABELS = {"base": "the base model", "base+rag": "retrieval", "tuned": "the tuned model",
                "tuned+rag": "the tuned model with retrieval"}
FEW_QUESTIONS = 30
"""Below this many paired questions, a 95% interval on a difference is wider than ±20 points whatever happens."""
METRIC_PREFERENCE = ("mc_likelihood", "open_judge", "open_f1")
QUESTION_KINDS = {"mc_likelihood": "multiple-choice ", "open_judge": "judged open ", "open_f1": "open "}


def system_label(name: str) -> str:
    """``tuned`` → "Tuned model (closed book)"; a GGUF path keeps its file name."""
    if name in SYSTEM_LABELS:
        return SYSTEM_LABELS[name]
    path, rag = (name[:-4], True) if name.endswith("+rag") else (name, False)
    return path.replace("\\", "/").rsplit("/", 1)[-1] + (" + retrieval" if rag else "")


def _comparison(summary: dict[str, Any], a: str, b: str) -> tuple[dict[str, Any], float] | None:
    """The paired comparison of ``a`` with ``b`` (sign +1), or of ``b`` with ``a`` (sign -1)."""
    for entry in summary.get("comparisons", []):
        if (entry.get("a"), entry.get("b")) == (a, b):
            return entry, 1.0
        if (entry.get("a"), entry.get("b")) == (b, a):
            return entry, -1.0
    return None


def verdict(summary: dict[str, Any], a: str = "tuned", b: str = "base+rag") -> str:
    """One or two sentences: the difference between ``a`` and ``b`` in points, its interval and p, in words."""
    scored = set(summary.get("systems", []))
    missing = [name for name in (a, b) if name not in scored]
    if missing:
        reasons = summary.get("skipped", {})
        said = "; ".join(f"{system_label(name)}: {reasons[name]}" if name in reasons else
                         f"{system_label(name)} was not scored" for name in missing)
        return f"No comparison of {SHORT_LABELS.get(a, a)} with {SHORT_LABELS.get(b, b)} yet ({said})."
    found = _comparison(summary, a, b)
    if found is None:
        return f"This evaluation holds no paired comparison of {SHORT_LABELS.get(a, a)} with {SHORT_LABELS.get(b, b)}."
    entry, sign = found
    metric = next((m for m in METRIC_PREFERENCE if m in entry.get("metrics", {})), None)
    if metric is None:
        return "No question was answered by both systems yet."
    figures = entry["metrics"][metric]
    return _sentence(figures, sign, SHORT_LABELS.get(a, a), SHORT_LABELS.get(b, b), metric)


def _sentence(figures: dict[str, Any], sign: float, a: str, b: str, metric: str) -> str:
    n = figures["n"]
    difference = sign * figures["bootstrap"]["difference"] * 100
    low, high = sorted(sign * value * 100 for value in (figures["bootstrap"]["ci95"] or [0.0, 0.0]))
    p_value = (figures.get("mcnemar") or figures["bootstrap"]).get("p_value")
    what = "more questions" if metric != "open_f1" else "more word overlap"
    interval = f"95% interval {low:+.0f} to {high:+.0f} points; p {_p(p_value)}"
    kind = QUESTION_KINDS[metric]
    if n < FEW_QUESTIONS:
        return (f"No clear difference yet: {n} {kind}question{'s' if n != 1 else ''} {'are' if n != 1 else 'is'} "
                f"too few "
                f"to tell {a} from {b} ({difference:+.0f} points, {interval}). Generate more held-out questions "
                f"on the Synthesize page.")
    if low > 0 or high < 0:
        direction = what if difference > 0 else what.replace("more", "fewer")
        return (f"{a[0].upper() + a[1:]} answers {abs(difference):.0f} points {direction} than {b} "
                f"({interval}, over {n} {kind}questions).")
    return (f"No clear difference between {a} and {b}: {difference:+.0f} points ({interval}, over {n} "
            f"{kind}questions).")


def _p(value: float | None) -> str:
    """``p`` and its value as the verdict reads it: "< 0.001", "= 0.012"."""
    if value is None:
        return "= —"
    return "< 0.001" if value < 0.001 else f"= {value:.3f}" if value < 0.1 else f"= {value:.2f}"


def answer_costs(summary: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per system: mean seconds per answer and mean context tokens per answer (what each answer costs)."""
    return {
        system: {"seconds_per_answer": (scores.get("total_s") or {}).get("mean"),
                 "context_tokens_per_answer": (scores.get("context_tokens") or {}).get("mean")}
        for system, scores in summary.get("scores", {}).items()
    }


def tuning_cost(project) -> dict[str, Any]:
    """The one-time cost of tuning: synthetic items, teacher tokens and seconds, training seconds and tokens."""
    from doctune.core.items import load_training_items
    from doctune.core.runs import latest_complete_run, read_summary

    items = load_training_items(project)
    cost: dict[str, Any] = {
        "items": len(items),
        "teacher_tokens": sum(int(item.meta.get("prompt_tokens", 0)) + int(item.meta.get("completion_tokens", 0))
                              for item in items),
        "teacher_seconds": round(sum(float(item.meta.get("seconds", 0.0)) for item in items), 1),
        "train_seconds": None, "train_tokens": None,
    }
    run = latest_complete_run(project)
    summary = read_summary(run) if run is not None else None
    if summary:
        cost["train_seconds"] = summary.get("seconds_this_session")
        cost["train_tokens"] = summary.get("tokens")
    return cost
