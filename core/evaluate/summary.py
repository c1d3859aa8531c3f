"""From result records to the scoreboard: per-system scores with intervals,
paired comparisons, a per-document breakdown, latency, context and memory.

Scores per record (see ``doctune.core.evaluate.step`` for the record):

- ``mc_likelihood``: the option with the highest mean log-probability
  per token is the right one (1/0). Needs no parsing.
- ``mc_letter``: the letter parsed from the generated answer is right (1/0);
  an unparseable answer scores 0 and is also counted in ``unparseable``.
- ``open_judge``: the judge said "correct" (1/0); "partial" scores 0 here and
  0.5 in ``partial_credit``. Unjudged answers are left out of both.
- ``open_f1``: token F1 of the answer against the reference (0 … 1).
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from doctune.core.evaluate.stats import mcnemar_exact, mean_interval, paired_bootstrap, wilson_interval
from doctune.core.records import EvalSummary

BINARY_METRICS = ("mc_likelihood", "mc_letter", "open_judge")
METRICS = (*BINARY_METRICS, "open_f1")
METRIC_LABELS = {
    "mc_likelihood": "Multiple choice, by likelihood",
    "mc_letter": "Multiple choice, by answer letter",
    "open_judge": "Open, judged correct",
    "open_f1": "Open, token F1",
}


def metric_value(record: dict, metric: str) -> float | None:
    """The record's score for ``metric``, or None when the metric does not apply to it."""
    mc, open_ = record.get("mc"), record.get("open")
    if metric == "mc_likelihood" and mc is not None:
        return float(bool(mc.get("likelihood_correct")))
    if metric == "mc_letter" and mc is not None:
        return float(bool(mc.get("letter_correct")))
    if metric == "open_judge" and open_ is not None and open_.get("verdict") in ("correct", "partial", "incorrect"):
        return float(open_["verdict"] == "correct")
    if metric == "open_f1" and open_ is not None:
        return float(open_.get("f1") or 0.0)
    return None


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _interval(interval) -> list[float] | None:
    return None if interval is None else [round(interval.low, 4), round(interval.high, 4)]


def binary_score(values: Sequence[float]) -> dict[str, Any]:
    n, correct = len(values), int(sum(values))
    return {"n": n, "correct": correct, "accuracy": _round(correct / n) if n else None,
            "ci95": _interval(wilson_interval(correct, n))}


def _mean_score(values: Sequence[float]) -> dict[str, Any]:
    return {"n": len(values), "mean": _round(statistics.fmean(values)) if values else None,
            "ci95": _interval(mean_interval(values))}


def _timing(values: Iterable[float | None]) -> dict[str, float | None]:
    present = [value for value in values if value is not None]
    if not present:
        return {"median": None, "mean": None}
    return {"median": _round(statistics.median(present)), "mean": _round(statistics.fmean(present))}


def system_scores(records: list[dict]) -> dict[str, Any]:
    """Every score of one system over its records."""
    scores: dict[str, Any] = {}
    for metric in BINARY_METRICS:
        scores[metric] = binary_score([v for r in records if (v := metric_value(r, metric)) is not None])
    scores["open_f1"] = _mean_score([v for r in records if (v := metric_value(r, "open_f1")) is not None])
    mc = [r["mc"] for r in records if r.get("mc") is not None]
    unparseable = sum(1 for m in mc if m.get("letter") is None)
    parseable = [m for m in mc if m.get("letter") is not None]
    scores["mc_letter"]["unparseable"] = unparseable
    scores["mc_letter"]["parseable_accuracy"] = (
        _round(sum(bool(m.get("letter_correct")) for m in parseable) / len(parseable)) if parseable else None
    )
    verdicts = [r["open"].get("verdict") for r in records if r.get("open") is not None]
    judged = [v for v in verdicts if v in ("correct", "partial", "incorrect")]
    scores["open_judge"].update(
        partial=judged.count("partial"), incorrect=judged.count("incorrect"), unjudged=len(verdicts) - len(judged),
        partial_credit=_round((judged.count("correct") + 0.5 * judged.count("partial")) / len(judged)) if judged else None,
    )
    scores["ttft_s"] = _timing(r.get("ttft_s") for r in records)
    scores["total_s"] = _timing(r.get("total_s") for r in records)
    scores["context_tokens"] = _timing(r.get("context_tokens") for r in records)
    scores["completion_tokens"] = _timing(r.get("completion_tokens") for r in records)
    memory = [r["rss_mb"] for r in records if r.get("rss_mb") is not None]
    scores["memory_peak_mb"] = _round(max(memory), 1) if memory else None
    scores["failed"] = sum(1 for r in records if r.get("error"))
    scores["n"] = len(records)
    return scores


def compare(records_by_key: dict[tuple[str, str], dict], question_ids: list[str], a: str, b: str) -> dict[str, Any]:
    """Paired comparison of systems ``a`` and ``b`` on the questions both were scored on."""
    result: dict[str, Any] = {"a": a, "b": b, "metrics": {}}
    for metric in METRICS:
        pairs = [
            (va, vb) for qid in question_ids
            if (ra := records_by_key.get((qid, a))) is not None and (rb := records_by_key.get((qid, b))) is not None
            and (va := metric_value(ra, metric)) is not None and (vb := metric_value(rb, metric)) is not None
        ]
        if not pairs:
            continue
        a_scores, b_scores = [p[0] for p in pairs], [p[1] for p in pairs]
        entry: dict[str, Any] = {"n": len(pairs), "a_mean": _round(statistics.fmean(a_scores)),
                                 "b_mean": _round(statistics.fmean(b_scores))}
        boot = paired_bootstrap(a_scores, b_scores)
        entry["bootstrap"] = {"difference": _round(boot.difference), "ci95": _interval(boot.interval),
                              "p_value": _round(boot.p_value)}
        if metric in BINARY_METRICS:
            test = mcnemar_exact([s == 1 for s in a_scores], [s == 1 for s in b_scores])
            entry["mcnemar"] = {"only_a": test.only_a, "only_b": test.only_b, "p_value": _round(test.p_value, 6)}
        result["metrics"][metric] = entry
    return result


def per_document(records: list[dict], systems: list[str]) -> dict[str, Any]:
    """For each document: its title and each system's binary scores on its questions."""
    grouped: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    titles: dict[str, str] = {}
    for record in records:
        doc = record.get("doc_id") or "(unknown)"
        grouped[doc][record["system"]].append(record)
        titles.setdefault(doc, record.get("doc_title") or doc[:12])
    breakdown: dict[str, Any] = {}
    for doc in sorted(grouped, key=lambda d: titles[d]):
        breakdown[doc] = {"title": titles[doc], "systems": {}}
        for system in systems:
            chosen = grouped[doc].get(system, [])
            breakdown[doc]["systems"][system] = {
                metric: binary_score([v for r in chosen if (v := metric_value(r, metric)) is not None])
                for metric in ("mc_likelihood", "open_judge")
            }
    return breakdown


def summarize(
    records: list[dict], *, eval_id: str, systems: list[str], question_ids: list[str],
    skipped: dict[str, str], comparisons: list[tuple[str, str]], extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary JSON of one evaluation."""
    by_system: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_system[record["system"]].append(record)
    scored = [system for system in systems if by_system.get(system)]
    by_key = {(r["question_id"], r["system"]): r for r in records}
    kinds = {r["question_id"]: r.get("kind") for r in records}
    return {
        "schema_version": EvalSummary.VERSION,
        "eval_id": eval_id,
        "systems": scored,
        "skipped": skipped,
        "questions": {"total": len(question_ids), "mc": sum(1 for k in kinds.values() if k == "mc"),
                      "open": sum(1 for k in kinds.values() if k == "open")},
        "scores": {system: system_scores(by_system[system]) for system in scored},
        "comparisons": [compare(by_key, question_ids, a, b) for a, b in comparisons if a in scored and b in scored],
        "per_document": per_document(records, scored),
        **(extra or {}),
    }


def headline(summary: dict[str, Any], metric: str = "mc_likelihood") -> Callable[[str], str]:
    """Formatter used by the CLI: 'accuracy [low, high]' of a system for ``metric``."""
    def text(system: str) -> str:
        score = summary["scores"][system][metric]
        if metric == "open_f1":
            return "—" if score["mean"] is None else f"{score['mean']:.3f}"
        if score["accuracy"] is None:
            return "—"
        low, high = score["ci95"]
        return f"{score['accuracy']:.1%} [{low:.0%}, {high:.0%}] (n={score['n']})"
    return text
