"""``doctune index``: embed the project's chunks and build the hybrid search index."""
from __future__ import annotations

from doctune.core.commands import CommandContext, add_command


def register(sub) -> None:
    index = add_command(sub, "index", cmd_index, "Embed the project's chunks and build the hybrid search index.")
    index.add_argument("--embedder", help="sentence-transformers name or folder (default: rag.embedder)")
    index.add_argument("--rebuild", action="store_true", help="embed every chunk again")


def cmd_index(ctx: CommandContext) -> int:
    from doctune.core.rag import IndexParams, run

    project = ctx.project()
    params = IndexParams(project_dir=project.root, embedder=ctx.args.embedder, rebuild=ctx.args.rebuild)
    result = run(params, events=ctx.events.child("index"), cancel=ctx.cancel)
    ctx.events.done(
        f"Index up to date: {result.total} chunks ({result.embedded} embedded, {result.unchanged} unchanged, "
        f"{result.removed} removed) with {result.embedder}.",
        embedded=result.embedded, removed=result.removed, unchanged=result.unchanged, total=result.total,
        embedder=result.embedder, rebuilt=result.rebuilt, seconds=round(result.seconds, 2),
    )
    return 0
