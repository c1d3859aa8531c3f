"""``doctune status``: the project's documents.

``status --json`` prints one JSON object::

    {"schema_version": 1, "project": "<project folder>",
     "documents": [{"path", "name", "id", "format", "status": "ok"|"error",
                    "error": null|str, "hint": null|str, "pages", "chunks"}, ...],
     "chunks": <number of stored chunks>}
"""
from __future__ import annotations

import json

from doctune.core.commands import CommandContext, add_command
from doctune.core.exitcodes import ExitCode

STATUS_SCHEMA_VERSION = 1


def register(sub) -> None:
    status = add_command(sub, "status", cmd_status, "Show the project's documents: status, pages, chunks, errors.")
    status.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


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
        return ExitCode.OK
    _print_status(ctx, project, report)
    return ExitCode.OK


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
