"""Evaluation: held-out questions through base, base+RAG, tuned and tuned+RAG, scored.

Public surface:

- ``run(EvalParams(project_dir=…, systems=[…]), events=, cancel=) -> EvalResult`` —
  answer, judge and summarize (resumable; see ``runner``).
- ``report(project, eval_id=None) -> Path`` — the self-contained HTML report.
- ``list_evals(project)``, ``open_eval(project, eval_id=None)`` — the evaluations on disk.
"""
from __future__ import annotations

from pathlib import Path

from doctune.core.evaluate.step import EvalNotFoundError, EvalParams, EvalResult, NoQuestionsError, run
from doctune.core.evaluate.store import EvalStore, list_evals, open_eval


def report(project, eval_id: str | None = None, out: Path | None = None) -> Path:
    """Write the HTML report of an evaluation (default: the latest) and return its path."""
    from doctune.core.evaluate.report_html import write_report

    store = open_eval(project, eval_id)
    if store is None or store.summary() is None:
        which = f"'{eval_id}'" if eval_id else "finished"
        raise EvalNotFoundError(f"No {which} evaluation in {project.eval_dir}.",
                                hint=f"Run one with: doctune eval -p {project.root}",
                                window_hint="Press Run evaluation on the Evaluate page.")
    return write_report(project, store, out)


__all__ = ["run", "report", "EvalParams", "EvalResult", "EvalStore", "NoQuestionsError", "EvalNotFoundError",
           "list_evals", "open_eval"]
