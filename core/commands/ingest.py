"""``doctune add``, ``doctune remove`` and ``doctune status``: the project's documents.

``status --json`` prints one JSON object::

    {"schema_version": 1, "project": "<project folder>",
     "documents": [{"path", "name", "id", "format", "status": "ok"|"error",
                    "error": null|str, "hint": null|str, "pages", "chunks"}, ...],
     "chunks": <number of stored chunks>}
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from doctune.core.cli import EXIT_OK, EXIT_PARTIAL, CommandContext, UsageError, add_command

STATUS_SCHEMA_VERSION = 1


def register(sub) -> None:
    add = add_command(sub, "add", cmd_add, "Add files and folders (PDF, DOCX, Markdown, TXT, HTML, EPUB) to the project.")
    add.add_argument("paths", nargs="+", metavar="PATH", help="files or folders (folders are searched recursively)")
    add.add_argument("--chunk-tokens", type=int, help="chunk size in tokens (default: the project's [ingest] setting)")
    add.add_argument("--chunk-overlap", type=int, help="overlap between chunks in tokens (default: project setting)")

    remove = add_command(sub, "remove", cmd_remove, "Remove documents and their chunks from the project.")
    remove.add_argument("docs", nargs="*", metavar="DOC", help="a document's path, file name, id (or id prefix), or a folder")
    remove.add_argument("--all", action="store_true", help="remove every document of the project")
    remove.add_argument("--yes", action="store_true",
                        help="confirm that a folder which holds every document of the project is removed whole")

    status = add_command(sub, "status", cmd_status, "Show the project's documents: status, pages, chunks, errors.")
    status.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


# ----- add ---------------------------------------------------------------------------------
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
    code = EXIT_PARTIAL if result.failed else EXIT_OK
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


# ----- remove ------------------------------------------------------------------------------
def _matches(arg: str, rows: list[dict]) -> list[dict]:
    """Documents named by a path, a folder, a file name, or an id (prefix of 8+ characters)."""
    absolute = os.path.abspath(arg)
    by_path = [row for row in rows if row["path"] == absolute]
    if by_path:
        return by_path
    if os.path.isdir(absolute):
        prefix = absolute.rstrip(os.sep) + os.sep
        return [row for row in rows if row["path"].startswith(prefix)]
    by_name = [row for row in rows if row["name"] == arg]
    if by_name:
        return by_name
    if len(arg) >= 8:
        return [row for row in rows if row["id"].startswith(arg.lower())]
    return []


def cmd_remove(ctx: CommandContext) -> int:
    from doctune.core.store import writing

    with writing(ctx.project()):
        return _remove(ctx)


def _remove(ctx: CommandContext) -> int:
    from doctune.core.store import Store, describe_reclaimed

    store = Store(ctx.project())
    rows = store.document_rows()
    if ctx.args.all and ctx.args.docs:
        raise UsageError("Give either documents to remove or --all, not both (nothing was removed).")
    if not ctx.args.all and not ctx.args.docs:
        raise UsageError("Name the documents to remove (path, file name, id or folder), "
                         "or pass --all to remove every document.")
    chosen: dict[str, dict] = {row["id"]: row for row in rows} if ctx.args.all else {}
    for arg in ctx.args.docs:
        found = _matches(arg, rows)
        if not found:
            raise UsageError(f"No document matches '{arg}' (nothing was removed); see 'doctune status' for the list.")
        if len(found) > 1 and not os.path.isdir(arg):
            listed = "\n  ".join(f"{row['id'][:12]}  {row['path']}" for row in found)
            raise UsageError(f"'{arg}' matches {len(found)} documents (nothing was removed); name one by path or id:\n  {listed}")
        if len(found) == len(rows) > 1 and os.path.isdir(arg) and not ctx.args.yes:
            raise UsageError(f"The folder '{arg}' holds every document of the project ({len(rows)}); nothing was "
                             "removed. Pass --yes to remove them all (or --all), or name a narrower folder.")
        chosen.update({row["id"]: row for row in found})
    store.delete_documents(chosen)
    for row in chosen.values():
        ctx.events.log(f"Removed {row['path']} ({row['chunks'] or 0} chunks)", path=row["path"])
    freed = store.reclaim()
    ctx.events.done(f"Removed {len(chosen)} document(s); {describe_reclaimed(freed)} of disk space given back.",
                    removed=len(chosen), reclaimed_bytes=freed)
    return EXIT_OK


# ----- status ------------------------------------------------------------------------------
def status_report(project) -> dict:
    from doctune.core.documents_status import document_rows

    documents = [
        {"path": row["path"], "name": row["name"], "id": row["id"], "format": row["format"], "status": row["status"],
         "error": row["error"], "hint": row["hint"], "pages": row["pages"], "chunks": row["chunks"] or 0}
        for row in document_rows(project)
    ]
    return {
        "schema_version": STATUS_SCHEMA_VERSION,
        "project": str(project.root),
        "documents": documents,
        "chunks": sum(doc["chunks"] for doc in documents if doc["status"] == "ok"),
    }


def cmd_status(ctx: CommandContext) -> int:
    project = ctx.project()
    report = status_report(project)
    if ctx.args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2), flush=True)
        return EXIT_OK
    _print_status(ctx, project, report)
    return EXIT_OK


def _print_status(ctx: CommandContext, project, report: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    documents = report["documents"]
    ctx.print(f"[bold]{escape(project.config.project.name)}[/bold]  {escape(report['project'])}")
    if not documents:
        ctx.print(f"No documents yet. Add some with: doctune add FILES... -p {escape(report['project'])}")
        return
    table = Table(show_edge=False, pad_edge=False)
    for column, justify in (("document", "left"), ("status", "left"), ("pages", "right"), ("chunks", "right")):
        table.add_column(column, justify=justify, overflow="fold")
    for doc in documents:
        ok = doc["status"] == "ok"
        table.add_row(escape(doc["path"]), "[green]ok[/green]" if ok else "[red]error[/red]",
                      "" if doc["pages"] is None else str(doc["pages"]), str(doc["chunks"]))
    ctx.print(table)
    failed = [doc for doc in documents if doc["status"] != "ok"]
    for doc in failed:
        ctx.print(f"[red]{escape(doc['name'])}[/red]: {escape(doc['error'] or '')}\n  [dim]{escape(doc['hint'] or '')}[/dim]")
    ctx.print(f"{len(documents) - len(failed)} document(s) ok, {len(failed)} with errors, {report['chunks']} chunks.")
