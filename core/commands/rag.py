"""``doctune index``, ``search``, ``ask`` and ``compare``: retrieval and chat from the terminal."""
from __future__ import annotations

import sys
from typing import Any

from rich.markup import escape

from doctune.core.cli import CommandContext, UsageError, add_command

DEFAULT_COMPARE = "tuned,base+rag"


def register(sub) -> None:
    index = add_command(sub, "index", cmd_index, "Embed the project's chunks and build the hybrid search index.")
    index.add_argument("--embedder", help="sentence-transformers name or folder (default: rag.embedder)")
    index.add_argument("--rebuild", action="store_true", help="embed every chunk again")

    search = add_command(sub, "search", cmd_search, "Search the documents (vector + full text, fused).")
    search.add_argument("query", help="what to look for")
    search.add_argument("-k", "--k", type=int, default=None, help="results to show (default: rag.k)")
    search.add_argument("--mode", choices=["hybrid", "vector", "text"], default="hybrid", help="which search to run")

    ask = add_command(sub, "ask", cmd_ask, "Ask one model a question; the answer streams, then its sources.")
    ask.add_argument("question", help="the question")
    ask.add_argument("--model", default="base", help="base, tuned, or the path of a .gguf file (default: base)")
    ask.add_argument("--rag", action="store_true", help="answer from retrieved chunks and cite them")
    ask.add_argument("-k", "--k", type=int, default=None, help="chunks retrieved (default: rag.k)")

    compare = add_command(sub, "compare", cmd_compare, "Ask several systems the same question and compare them.")
    compare.add_argument("question", help="the question")
    compare.add_argument("--systems", default=DEFAULT_COMPARE,
                         help=f"comma-separated: base, tuned, base+rag, tuned+rag or PATH.gguf[+rag] (default: {DEFAULT_COMPARE})")
    compare.add_argument("-k", "--k", type=int, default=None, help="chunks retrieved for +rag systems (default: rag.k)")


# ----- index and search ------------------------------------------------------------------------

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


def _hit_record(number: int, hit) -> dict[str, Any]:
    return {"rank": number, "chunk_id": hit.chunk_id, "doc_id": hit.doc_id, "doc_title": hit.doc_title,
            "doc_path": hit.doc_path, "page_start": hit.page_start, "page_end": hit.page_end,
            "score": round(hit.score, 6), "text": hit.text}


def _snippet(text: str, width: int = 240) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def cmd_search(ctx: CommandContext) -> int:
    from doctune.core.rag import Retriever

    project = ctx.project()
    hits = Retriever(project).search(ctx.args.query, k=ctx.args.k, mode=ctx.args.mode)
    if not ctx.jsonl:
        if not hits:
            ctx.print("No matching chunks.")
        for number, hit in enumerate(hits, 1):
            ctx.print(f"[bold]{number}. {escape(hit.label)}[/bold]  [dim]score {hit.score:.4f} · {hit.chunk_id}[/dim]")
            ctx.print(f"   {_snippet(hit.text)}", markup=False)
    ctx.events.done(None, hits=[_hit_record(number, hit) for number, hit in enumerate(hits, 1)])
    return 0


# ----- ask and compare -------------------------------------------------------------------------

def _answer_record(answer) -> dict[str, Any]:
    return {
        "system": answer.system, "answer": answer.text,
        "ttft_s": round(answer.ttft_s, 4) if answer.ttft_s is not None else None,
        "total_s": round(answer.total_s, 4), "completion_tokens": answer.completion_tokens,
        "tokens_per_s": round(answer.tokens_per_s, 2) if answer.tokens_per_s else None,
        "context_tokens": answer.context_tokens, "cited": answer.cited,
        "sources": [_hit_record(number, hit) for number, hit in enumerate(answer.sources, 1)],
    }


def _print_sources(ctx: CommandContext, answer) -> None:
    if not answer.sources:
        return
    ctx.print("\n[bold]Sources[/bold]")
    for number, hit in enumerate(answer.sources, 1):
        mark = "*" if number in answer.cited else " "
        ctx.print(f"{mark}\\[{number}] {escape(hit.label)}  [dim]{escape(hit.doc_path or '')}[/dim]")
        ctx.print(f"     {_snippet(hit.text, 160)}", markup=False)


def _stats(answer) -> str:
    ttft = f"{answer.ttft_s:.2f} s" if answer.ttft_s is not None else "–"
    rate = f"{answer.tokens_per_s:.1f}" if answer.tokens_per_s else "–"
    return (f"first token {ttft} · {rate} tokens/s · {answer.completion_tokens} tokens · "
            f"context {answer.context_tokens} tokens")


def _system_name(model: str, rag: bool) -> str:
    return f"{model}+rag" if rag else model


def cmd_ask(ctx: CommandContext) -> int:
    from doctune.core.chat import open_system

    project = ctx.project()
    if ctx.args.k is not None:
        project.config.rag.k = ctx.args.k
    system = open_system(project, _system_name(ctx.args.model, ctx.args.rag), events=ctx.events.child("ask"),
                         cancel=ctx.cancel)
    try:
        for piece in system.stream(ctx.args.question, cancel=ctx.cancel):
            if not ctx.jsonl:
                sys.stdout.write(piece)
                sys.stdout.flush()
        answer = system.last_answer
    finally:
        system.close()
    if not ctx.jsonl:
        sys.stdout.write("\n")
        _print_sources(ctx, answer)
        ctx.print(f"[dim]{_stats(answer)}[/dim]")
    ctx.events.done(None, **_answer_record(answer))
    return 0


def _parse_systems(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UsageError("--systems needs at least one system, e.g. --systems tuned,base+rag")
    if len(set(names)) != len(names):
        raise UsageError(f"--systems lists a system twice: {text}")
    return names


def cmd_compare(ctx: CommandContext) -> int:
    from doctune.core.chat import open_system

    project = ctx.project()
    if ctx.args.k is not None:
        project.config.rag.k = ctx.args.k
    names = _parse_systems(ctx.args.systems)
    backends: dict = {}
    answers = []
    try:
        systems = [open_system(project, name, events=ctx.events.child("compare"), cancel=ctx.cancel, backends=backends)
                   for name in names]
        for system in systems:
            if not ctx.jsonl:
                ctx.print(f"\n[bold]── {system.name} ──[/bold]")
            for piece in system.stream(ctx.args.question, cancel=ctx.cancel):
                if not ctx.jsonl:
                    sys.stdout.write(piece)
                    sys.stdout.flush()
            if not ctx.jsonl:
                sys.stdout.write("\n")
                sys.stdout.flush()
            answers.append(system.last_answer)
            ctx.events.metric(system=system.name, **{k: v for k, v in _answer_record(system.last_answer).items()
                                                     if k in ("ttft_s", "tokens_per_s", "context_tokens", "completion_tokens")})
    finally:
        for backend in backends.values():
            backend.close()
    if not ctx.jsonl:
        _print_side_by_side(ctx, answers)
    ctx.events.done(None, question=ctx.args.question, answers=[_answer_record(answer) for answer in answers])
    return 0


def _print_side_by_side(ctx: CommandContext, answers: list) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(show_lines=True, expand=True)
    for answer in answers:
        table.add_column(answer.system, overflow="fold", ratio=1)
    table.add_row(*[Text(answer.text.strip() or "(empty answer)") for answer in answers])
    table.add_row(*[
        Text("\n".join(f"[{n}] {hit.label}" for n, hit in enumerate(answer.sources, 1)) or "(closed book)")
        for answer in answers
    ])
    table.add_row(*[Text(_stats(answer)) for answer in answers])
    ctx.print(table)
