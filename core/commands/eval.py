"""``doctune eval``: score the held-out questions on base, base+RAG, tuned and tuned+RAG (resumable)."""
from __future__ import annotations

from doctune.core.commands import CommandContext, UsageError, add_command
from doctune.core.exitcodes import ExitCode

EVAL_HELP = "Score the held-out questions on base, base+RAG, tuned and tuned+RAG (resumable)."


def register(sub) -> None:
    parser = add_command(sub, "eval", cmd_eval, EVAL_HELP)
    parser.add_argument("--systems", metavar="LIST",
                        help="comma-separated systems: base, base+rag, tuned, tuned+rag, or PATH.gguf[+rag] "
                             "(default: the project's [eval] systems)")
    parser.add_argument("--eval-id", metavar="ID", help="continue this evaluation")
    parser.add_argument("--new", action="store_true", help="start a fresh evaluation even if a matching one exists")
    parser.add_argument("--no-judge", action="store_true", help="do not ask the teacher to judge open answers")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N questions (a quick check)")


def cmd_eval(ctx: CommandContext) -> int:
    from doctune.core.evaluate import EvalParams, run
    from doctune.core.evaluate.summary import headline
    from doctune.core.pipeline import open_teacher

    args = ctx.args
    systems = [s.strip() for s in args.systems.split(",") if s.strip()] if args.systems else None
    try:
        params = EvalParams(project_dir=ctx.project().root, systems=systems, eval_id=args.eval_id, new=args.new,
                            judge=not args.no_judge, limit=args.limit)
    except ValueError as exc:
        raise UsageError(_first_error(exc)) from None
    result = run(params, events=ctx.events, cancel=ctx.cancel, open_teacher=open_teacher)
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
    return ExitCode.PARTIAL if result.skipped else ExitCode.OK


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(exc)
