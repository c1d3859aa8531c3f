"""``doctune run``: every step in order, skipping what is done and resuming what was interrupted."""
from __future__ import annotations

from doctune.core.commands import CommandContext, add_command
from doctune.core.exitcodes import ExitCode

RUN_HELP = "Run every step in order, skipping what is done and resuming what was interrupted."


def register(sub) -> None:
    from doctune.core.pipeline import STEPS

    parser = add_command(sub, "run", cmd_run, RUN_HELP)
    parser.add_argument("--until", choices=STEPS, metavar="STEP",
                        help=f"stop after this step (one of: {', '.join(STEPS)})")
    parser.add_argument("--add", nargs="*", metavar="PATH", default=[],
                        help="files or folders to ingest first (new files in them are added)")


def cmd_run(ctx: CommandContext) -> int:
    from doctune.core.pipeline import PipelineParams, run

    params = PipelineParams(project_dir=ctx.project().root, until=ctx.args.until, add=ctx.args.add)
    result = run(params, events=ctx.events, cancel=ctx.cancel)
    ctx.events.done(result.message(), steps=result.as_dict())
    return ExitCode.PARTIAL if result.partial else ExitCode.OK
