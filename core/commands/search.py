"""``doctune search``: the documents' passages that match a query (vector + full text, fused)."""
from __future__ import annotations

from rich.markup import escape

from doctune.core.commands import CommandContext, add_command
from doctune.core.commands.answers import hit_record, snippet


def register(sub) -> None:
    search = add_command(sub, "search", cmd_search, "Search the documents (vector + full text, fused).")
    search.add_argument("query", help="what to look for")
    search.add_argument("-k", "--k", type=int, default=None, help="results to show (default: rag.k)")
    search.add_argument("--mode", choices=["hybrid", "vector", "text"], default="hybrid", help="which search to run")


def cmd_search(ctx: CommandContext) -> int:
    from doctune.core.rag import Retriever

    project = ctx.project()
    hits = Retriever(project).search(ctx.args.query, k=ctx.args.k, mode=ctx.args.mode)
    if not ctx.jsonl:
        if not hits:
            ctx.print("No matching chunks.")
        for number, hit in enumerate(hits, 1):
            ctx.print(f"[bold]{number}. {escape(hit.label)}[/bold]  [dim]score {hit.score:.4f} · {hit.chunk_id}[/dim]")
            ctx.print(f"   {snippet(hit.text)}", markup=False)
    ctx.events.done(None, hits=[hit_record(number, hit) for number, hit in enumerate(hits, 1)])
    return 0
