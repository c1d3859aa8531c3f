"""``doctune report``: the HTML report of an evaluation."""
from __future__ import annotations

from doctune.core.commands import CommandContext, add_command

REPORT_HELP = "Write the HTML report of an evaluation (default: the latest)."


def register(sub) -> None:
    parser = add_command(sub, "report", cmd_report, REPORT_HELP)
    parser.add_argument("eval_id", nargs="?", metavar="EVAL", help="evaluation id (default: the latest)")
    parser.add_argument("-o", "--out", metavar="FILE", help="where to write the HTML (default: reports/<EVAL>.html)")
    parser.add_argument("--list", action="store_true", help="list the evaluations instead")


def cmd_report(ctx: CommandContext) -> int:
    from pathlib import Path

    from doctune.core.evaluate import list_evals, report

    project = ctx.project()
    if ctx.args.list:
        for store in list_evals(project):
            summary = store.summary() or {}
            state = "complete" if summary.get("complete") else ("incomplete" if summary else "not summarized")
            ctx.print(f"{store.eval_id}  {', '.join(store.meta().systems)}  ({state})")
        return 0
    path = report(project, ctx.args.eval_id, Path(ctx.args.out) if ctx.args.out else None)
    ctx.events.done(f"Report written: {path}", path=str(path))
    return 0
