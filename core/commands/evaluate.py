"""``doctune eval``, ``doctune report`` and ``doctune run`` (the whole pipeline)."""
from __future__ import annotations

from doctune.core.cli import CommandContext, UsageError, add_command

EVAL_HELP = "Score the held-out questions on base, base+RAG, tuned and tuned+RAG (resumable)."
REPORT_HELP = "Write the HTML report of an evaluation (default: the latest)."
RUN_HELP = "Run every step in order, skipping what is done and resuming what was interrupted."


def register(sub) -> None:
    parser = add_command(sub, "eval", cmd_eval, EVAL_HELP)
    parser.add_argument("--systems", metavar="LIST",
                        help="comma-separated systems: base, base+rag, tuned, tuned+rag, or PATH.gguf[+rag] "
                             "(default: the project's [eval] systems)")
    parser.add_argument("--eval-id", metavar="ID", help="continue this evaluation")
    parser.add_argument("--new", action="store_true", help="start a fresh evaluation even if a matching one exists")
    parser.add_argument("--no-judge", action="store_true", help="do not ask the teacher to judge open answers")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N questions (a quick check)")

    parser = add_command(sub, "report", cmd_report, REPORT_HELP)
    parser.add_argument("eval_id", nargs="?", metavar="EVAL", help="evaluation id (default: the latest)")
    parser.add_argument("-o", "--out", metavar="FILE", help="where to write the HTML (default: reports/<EVAL>.html)")
    parser.add_argument("--list", action="store_true", help="list the evaluations instead")

    from doctune.core.pipeline import STEPS

    parser = add_command(sub, "run", cmd_run, RUN_HELP)
    parser.add_argument("--until", choices=STEPS, metavar="STEP",
                        help=f"stop after this step (one of: {', '.join(STEPS)})")
    parser.add_argument("--add", nargs="*", metavar="PATH", default=[],
                        help="files or folders to ingest first (new files in them are added)")


def cmd_eval(ctx: CommandContext) -> int:
    from doctune.core.evaluate import EvalParams, run
    from doctune.core.evaluate.summary import headline

    args = ctx.args
    systems = [s.strip() for s in args.systems.split(",") if s.strip()] if args.systems else None
    try:
        params = EvalParams(project_dir=ctx.project().root, systems=systems, eval_id=args.eval_id, new=args.new,
                            judge=not args.no_judge, limit=args.limit)
    except ValueError as exc:
        raise UsageError(_first_error(exc)) from None
    result = run(params, events=ctx.events, cancel=ctx.cancel)
    summary = result.summary
    if not ctx.jsonl:
        for system in summary["systems"]:
            ctx.print(f"  {system:<12} multiple choice (likelihood): {headline(summary)(system)}")
    ctx.events.done(
        f"Evaluation {result.eval_id}: {result.answered} answers, {result.judged} verdicts this run. "
        f"Report: doctune report -p {ctx.project().root} {result.eval_id}",
        window_message=f"Evaluation {result.eval_id}: {result.answered} answers, {result.judged} verdicts this run. "
                       "The Evaluate page shows the scores; Open HTML report opens the full report.",
        eval_id=result.eval_id, folder=str(result.folder), answered=result.answered, judged=result.judged,
        skipped=result.skipped,
    )
    return 2 if result.skipped else 0


def cmd_report(ctx: CommandContext) -> int:
    from pathlib import Path

    from doctune.core.evaluate import list_evals, report

    project = ctx.project()
    if ctx.args.list:
        for store in list_evals(project):
            summary = store.summary() or {}
            state = "complete" if summary.get("complete") else ("incomplete" if summary else "not summarized")
            ctx.print(f"{store.eval_id}  {', '.join(store.meta().get('systems', []))}  ({state})")
        return 0
    path = report(project, ctx.args.eval_id, Path(ctx.args.out) if ctx.args.out else None)
    ctx.events.done(f"Report written: {path}", path=str(path))
    return 0


def cmd_run(ctx: CommandContext) -> int:
    from doctune.core.pipeline import PipelineParams, run

    params = PipelineParams(project_dir=ctx.project().root, until=ctx.args.until, add=ctx.args.add)
    result = run(params, events=ctx.events, cancel=ctx.cancel)
    ctx.events.done(result.message(), steps=result.as_dict())
    return 2 if result.partial else 0


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(exc)
