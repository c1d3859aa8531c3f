"""``doctune report``: one self-contained HTML file per evaluation.

Everything is inline — styles, and the charts as PNG data URIs drawn with
matplotlib's Agg backend — so the file opens in any browser with no network
and can be mailed or archived as it is. Written to ``reports/<eval-id>.html``.
"""
from __future__ import annotations

import base64
import io
import textwrap
from html import escape
from pathlib import Path
from typing import Any

from doctune.core.evaluate.store import EvalStore
from doctune.core.evaluate.summary import BINARY_METRICS, METRIC_LABELS
from doctune.core.fsio import atomic_write_text

SYSTEM_COLOURS = {"base": "#9aa5b1", "base+rag": "#3b82f6", "tuned": "#f59e0b", "tuned+rag": "#10b981"}
EXTRA_COLOURS = ["#8b5cf6", "#ef4444", "#14b8a6", "#6366f1"]

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#1f2933;padding:0 1rem}
h1{margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #e4e7eb;padding-bottom:.3rem}
.muted{color:#616e7c;font-size:.9rem}table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{padding:.35rem .5rem;border-bottom:1px solid #e4e7eb;text-align:left;vertical-align:top}
th{background:#f5f7fa}.wide{overflow-x:auto}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.best{font-weight:700}.ci{color:#616e7c;font-size:.82rem}img{max-width:100%}
details{border:1px solid #e4e7eb;border-radius:6px;margin:.4rem 0;padding:.3rem .6rem}
summary{cursor:pointer}.ok{color:#047857}.bad{color:#b91c1c}.part{color:#b45309}.none{color:#616e7c}
.answer{white-space:pre-wrap;background:#f8fafc;padding:.3rem .5rem;border-radius:4px}
.passage{white-space:pre-wrap;font-size:.85rem;color:#3e4c59}.skip{color:#b45309}#scoreboard{font-size:.85rem}
"""


def _colour(system: str, index: int) -> str:
    return SYSTEM_COLOURS.get(system, EXTRA_COLOURS[index % len(EXTRA_COLOURS)])


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _grouped_bars(groups: list[str], systems: list[str], values: dict[str, list[dict]], title: str) -> str:
    """Bars per group and system with Wilson intervals as error bars; returns a PNG data URI."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    many = len(groups) > 6
    figure = Figure(figsize=(12.0 if many else max(6.0, 1.6 * len(groups) + 2), 4.2 if many else 3.6))
    axes = figure.subplots()
    width = 0.8 / max(len(systems), 1)
    for index, system in enumerate(systems):
        xs, heights, lows, highs = [], [], [], []
        for group_index, score in enumerate(values[system]):
            if score.get("accuracy") is None:
                continue
            xs.append(group_index + (index - (len(systems) - 1) / 2) * width)
            heights.append(score["accuracy"])
            low, high = score["ci95"]
            lows.append(score["accuracy"] - low)
            highs.append(high - score["accuracy"])
        axes.bar(xs, heights, width * 0.95, yerr=[lows, highs], capsize=3, label=system,
                 color=_colour(system, index), error_kw={"elinewidth": 1, "ecolor": "#323f4b"})
    if many:
        axes.set_xticks(range(len(groups)), [g if len(g) <= 30 else g[:28] + "…" for g in groups], fontsize=7,
                        rotation=35, ha="right")
    else:
        axes.set_xticks(range(len(groups)), [textwrap.fill(g if len(g) <= 48 else g[:46] + "…", 18) for g in groups],
                        fontsize=9)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("accuracy (95% CI)")
    axes.set_title(title, fontsize=11)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _png(figure)


def scoreboard_chart(summary: dict[str, Any]) -> str:
    systems = summary["systems"]
    metrics = [m for m in BINARY_METRICS if any(summary["scores"][s][m]["n"] for s in systems)]
    values = {s: [summary["scores"][s][m] for m in metrics] for s in systems}
    return _grouped_bars([METRIC_LABELS[m] for m in metrics], systems, values, "Accuracy by system")


def per_document_chart(summary: dict[str, Any], metric: str) -> str:
    systems = summary["systems"]
    docs = [doc for doc in summary["per_document"].values() if any(doc["systems"][s][metric]["n"] for s in systems)]
    values = {s: [doc["systems"][s][metric] for doc in docs] for s in systems}
    return _grouped_bars([doc["title"] for doc in docs], systems, values, f"{METRIC_LABELS[metric]}, per document")


def _pct(score: dict[str, Any], best: float | None) -> str:
    if score.get("accuracy") is None:
        return '<td class="num none">—</td>'
    low, high = score["ci95"]
    cls = "num best" if best is not None and score["accuracy"] == best else "num"
    return (f'<td class="{cls}">{score["accuracy"]:.1%} <span class="ci">[{low:.0%}–{high:.0%}]</span>'
            f'<br><span class="ci">{score["correct"]}/{score["n"]}</span></td>')


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _best(values: set[float]) -> float | None:
    """The highest value, or None when all are equal (nothing stands out)."""
    return max(values) if len(values) > 1 else None


def scoreboard_table(summary: dict[str, Any]) -> str:
    systems, scores = summary["systems"], summary["scores"]
    best = {m: _best({scores[s][m]["accuracy"] for s in systems if scores[s][m]["accuracy"] is not None})
            for m in BINARY_METRICS}
    head = ("<tr><th>System</th><th>MC by likelihood</th><th>MC by letter</th><th>Unparseable</th>"
            "<th>Open: judged correct</th><th>Unjudged</th><th>Open: token F1</th><th>TTFT (median)</th>"
            "<th>Total (median)</th><th>Context tokens</th><th>Peak memory</th></tr>")
    rows = []
    for system in systems:
        s = scores[system]
        f1 = s["open_f1"]["mean"]
        memory = s["memory_peak_mb"]
        rows.append(
            f"<tr><th>{escape(system)}</th>{_pct(s['mc_likelihood'], best['mc_likelihood'])}"
            f"{_pct(s['mc_letter'], best['mc_letter'])}<td class='num'>{s['mc_letter']['unparseable']}</td>"
            f"{_pct(s['open_judge'], best['open_judge'])}<td class='num'>{s['open_judge']['unjudged']}</td>"
            f"<td class='num'>{'—' if f1 is None else f'{f1:.3f}'}</td>"
            f"<td class='num'>{_seconds(s['ttft_s']['median'])}</td><td class='num'>{_seconds(s['total_s']['median'])}</td>"
            f"<td class='num'>{'—' if s['context_tokens']['mean'] is None else round(s['context_tokens']['mean'])}</td>"
            f"<td class='num'>{'—' if memory is None else f'{memory:.0f} MB'}</td></tr>"
        )
    return f"<div class='wide'><table id='scoreboard'>{head}{''.join(rows)}</table></div>"


def _p_value(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3g}"


def comparisons_table(summary: dict[str, Any]) -> str:
    rows = []
    for comparison in summary["comparisons"]:
        for metric, entry in comparison["metrics"].items():
            boot = entry["bootstrap"]
            low, high = boot["ci95"]
            mcnemar = entry.get("mcnemar")
            mc_text = (f"{_p_value(mcnemar['p_value'])} <span class='ci'>({mcnemar['only_a']} vs {mcnemar['only_b']})</span>"
                       if mcnemar else "—")
            rows.append(
                f"<tr><td>{escape(comparison['a'])} vs {escape(comparison['b'])}</td><td>{METRIC_LABELS[metric]}</td>"
                f"<td class='num'>{entry['n']}</td><td class='num'>{boot['difference']:+.3f} "
                f"<span class='ci'>[{low:+.3f}, {high:+.3f}]</span></td><td class='num'>{mc_text}</td>"
                f"<td class='num'>{_p_value(boot['p_value'])}</td></tr>"
            )
    if not rows:
        return "<p class='muted'>No pair of compared systems was scored on the same questions.</p>"
    head = ("<tr><th>Comparison</th><th>Score</th><th>Paired n</th><th>Difference A − B [95% CI]</th>"
            "<th>McNemar exact p (A only vs B only)</th><th>Bootstrap p</th></tr>")
    return f"<table id='comparisons'>{head}{''.join(rows)}</table>"


def _verdict_html(record: dict[str, Any]) -> str:
    if record.get("error"):
        return f"<span class='bad'>failed: {escape(record['error'])}</span>"
    if record.get("mc"):
        mc = record["mc"]
        letter = mc.get("letter") or "unparseable"
        by_letter = f"<span class='{'ok' if mc['letter_correct'] else 'bad'}'>letter {escape(letter)}</span>"
        by_likelihood = (f"<span class='{'ok' if mc['likelihood_correct'] else 'bad'}'>likelihood "
                         f"{escape(str(mc.get('likelihood_letter')))}</span>")
        return f"{by_letter} · {by_likelihood}"
    open_ = record.get("open") or {}
    verdict = open_.get("verdict")
    cls = {"correct": "ok", "partial": "part", "incorrect": "bad"}.get(verdict or "", "none")
    return (f"<span class='{cls}'>{escape(verdict or 'unjudged')}</span> · F1 {open_.get('f1', 0):.2f}"
            f"<br><span class='ci'>{escape(open_.get('reason') or '')}</span>")


def _page(page: int | None) -> str:
    return "" if page is None else f" p. {page}"


def _sources_html(sources: list[dict]) -> str:
    if not sources:
        return ""
    items = "".join(
        f"<li><b>{escape(str(s.get('doc_title') or s.get('doc_id') or ''))}</b>"
        f"{_page(s.get('page_start'))}"
        f" <span class='ci'>{escape(str(s.get('chunk_id') or ''))}</span>"
        f"<div class='passage'>{escape((s.get('text') or '')[:600])}</div></li>" for s in sources
    )
    return f"<details><summary>{len(sources)} retrieved chunks</summary><ol>{items}</ol></details>"


def drilldown(results: list[dict], systems: list[str]) -> str:
    """One collapsible block per question: the question, each system's answer and verdict, sources."""
    by_question: dict[str, list[dict]] = {}
    for record in results:
        by_question.setdefault(record["question_id"], []).append(record)
    blocks = []
    for qid, records in by_question.items():
        first = records[0]
        marks = " ".join(
            f"<span class='{'ok' if _is_right(r) else 'bad'}' title='{escape(r['system'])}'>"
            f"{escape(r['system'])} {'✓' if _is_right(r) else '✗'}</span>" for r in records
        )
        options = ""
        if first.get("options"):
            options = "<ol type='A'>" + "".join(f"<li>{escape(o)}</li>" for o in first["options"]) + "</ol>"
        rows = "".join(
            f"<tr><th>{escape(r['system'])}</th><td><div class='answer'>{escape(r.get('answer') or '')}</div>"
            f"{_sources_html(r.get('sources') or [])}</td><td>{_verdict_html(r)}</td></tr>" for r in records
        )
        blocks.append(
            f"<details class='question'><summary><b>{escape(qid)}</b> ({escape(first['kind'])}) "
            f"{escape(first.get('question') or '')} — {marks}</summary>{options}"
            f"<p><b>Expected:</b> {escape(str(first.get('expected') or ''))}"
            f"{'' if first['kind'] == 'open' else ' — ' + escape(first.get('reference') or '')}</p>"
            f"<p class='muted'>Document: {escape(first.get('doc_title') or first.get('doc_id') or '')}</p>"
            f"<details><summary>Source passage</summary><div class='passage'>{escape(first.get('source_text') or '')}"
            f"</div></details><table>{rows}</table></details>"
        )
    return "".join(blocks)


def _is_right(record: dict[str, Any]) -> bool:
    if record.get("mc"):
        return bool(record["mc"].get("likelihood_correct"))
    return (record.get("open") or {}).get("verdict") == "correct"


def render_html(summary: dict[str, Any], results: list[dict], project_name: str = "") -> str:
    systems = summary["systems"]
    skipped = "".join(f"<li class='skip'><b>{escape(s)}</b> skipped: {escape(r)}</li>"
                      for s, r in summary.get("skipped", {}).items())
    charts = ""
    if systems:
        charts = f"<img id='chart-scoreboard' alt='Accuracy by system with 95% intervals' src='{scoreboard_chart(summary)}'>"
    doc_charts = "".join(
        f"<img class='chart-document' alt='{METRIC_LABELS[m]} per document' src='{per_document_chart(summary, m)}'>"
        for m in ("mc_likelihood", "open_judge")
        if systems and summary["per_document"]
        and any(d["systems"][s][m]["n"] for d in summary["per_document"].values() for s in systems)
    )
    questions = summary["questions"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>DocTune evaluation {escape(summary['eval_id'])}</title><style>{STYLE}</style></head><body>
<h1>DocTune evaluation</h1>
<p class="muted">{escape(project_name)} · evaluation {escape(summary['eval_id'])} · updated {escape(str(summary.get('updated_at', '')))}
 · {questions['total']} held-out questions ({questions['mc']} multiple choice, {questions['open']} open) ·
 {len(systems)} systems{'' if summary.get('complete') else ' · <b>incomplete</b>'}</p>
<ul>{skipped}</ul>
<h2>Scoreboard</h2>
<p class="muted">Accuracy with 95% Wilson intervals; the best of each column in bold. Multiple choice by likelihood:
the option the model finds most likely (per token) is right. By letter: the letter parsed from its written answer.
Open: the teacher's verdict (unjudged answers are left out), and the word-overlap F1 with the reference.</p>
{scoreboard_table(summary)}
{charts}
<h2>Is the difference real?</h2>
<p class="muted">Paired over the questions both systems answered. A p-value below 0.05 means a difference this
large would rarely arise by chance; the interval is the plausible range of the difference in accuracy.</p>
{comparisons_table(summary)}
<h2>Per document</h2>
{doc_charts or "<p class='muted'>No per-document scores.</p>"}
<h2>Every question</h2>
{drilldown(results, systems)}
</body></html>
"""


def write_report(project, store: EvalStore, out: Path | None = None) -> Path:
    """Render the evaluation's summary and results to HTML; returns the file written."""
    summary = store.summary()
    if summary is None:
        raise FileNotFoundError(f"{store.summary_path} is missing; run doctune eval first")
    target = out or Path(project.reports_dir) / f"{store.eval_id}.html"
    atomic_write_text(target, render_html(summary, store.results(), project.config.project.name))
    return target
