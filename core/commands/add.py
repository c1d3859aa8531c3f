"""``doctune add``: files and folders into the project (read, chunked, indexed)."""
from __future__ import annotations

from pathlib import Path

from doctune.core.commands import CommandContext, UsageError, add_command
from doctune.core.exitcodes import ExitCode


def register(sub) -> None:
    add = add_command(sub, "add", cmd_add, "Add files and folders (PDF, DOCX, Markdown, TXT, HTML, EPUB) to the project.")
    add.add_argument("paths", nargs="+", metavar="PATH", help="files or folders (folders are searched recursively)")
    add.add_argument("--chunk-tokens", type=int, help="chunk size in tokens (default: the project's [ingest] setting)")
    add.add_argument("--chunk-overlap", type=int, help="overlap between chunks in tokens (default: project setting)")


def cmd_add(ctx: CommandContext) -> int:
    from pydantic import ValidationError

    from doctune.core.ingest import IngestParams, run

    project = ctx.project()
    try:
        params = IngestParams(project_dir=project.root, paths=[Path(path) for path in ctx.args.paths],
                              chunk_tokens=ctx.args.chunk_tokens, chunk_overlap=ctx.args.chunk_overlap)
    except ValidationError as exc:
        raise UsageError("; ".join(error["msg"] for error in exc.errors())) from None
    result = run(params, events=ctx.events.child("ingest"), cancel=ctx.cancel)
    code = ExitCode.PARTIAL if result.failed else ExitCode.OK
    if result.failed and not ctx.jsonl:
        from rich.markup import escape  # file names and reasons are the user's text, never Rich markup

        ctx.print(f"\n[red]{len(result.failed)} file(s) could not be added:[/red]")
        for outcome in result.failed:
            ctx.print(f"  {escape(outcome.path)}: {escape(outcome.error or '')}\n"
                      f"    [dim]{escape(outcome.hint or '')}[/dim]", markup=True)
    ctx.events.done(
        result.summary(), exit_code=code, added=len(result.of("added")), replaced=len(result.of("replaced")),
        unchanged=len(result.of("unchanged")), failed=len(result.failed), chunks=result.chunks_written,
    )
    return code
