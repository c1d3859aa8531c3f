"""``doctune ask``: one model answers a question (streaming), then its sources."""
from __future__ import annotations

import sys

from rich.markup import escape

from doctune.core.commands import CommandContext, add_command
from doctune.core.commands.answers import answer_record, prepare_base_model, snippet, stats


def register(sub) -> None:
    ask = add_command(sub, "ask", cmd_ask, "Ask one model a question; the answer streams, then its sources.")
    ask.add_argument("question", help="the question")
    ask.add_argument("--model", default="base", help="base, tuned, or the path of a .gguf file (default: base)")
    ask.add_argument("--rag", action="store_true", help="answer from retrieved chunks and cite them")
    ask.add_argument("-k", "--k", type=int, default=None, help="chunks retrieved (default: rag.k)")


def _print_sources(ctx: CommandContext, answer) -> None:
    if not answer.sources:
        return
    ctx.print("\n[bold]Sources[/bold]")
    for number, hit in enumerate(answer.sources, 1):
        mark = "*" if number in answer.cited else " "
        ctx.print(f"{mark}\\[{number}] {escape(hit.label)}  [dim]{escape(hit.doc_path or '')}[/dim]")
        ctx.print(f"     {snippet(hit.text, 160)}", markup=False)


def _system_name(model: str, rag: bool) -> str:
    return f"{model}+rag" if rag else model


def cmd_ask(ctx: CommandContext) -> int:
    from doctune.core.chat import open_system

    project = ctx.project()
    if ctx.args.k is not None:
        project.config.rag.k = ctx.args.k
    name = _system_name(ctx.args.model, ctx.args.rag)
    prepare_base_model(ctx, project, [name])
    system = open_system(project, name, events=ctx.events.child("ask"), cancel=ctx.cancel)
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
        ctx.print(f"[dim]{stats(answer)}[/dim]")
    ctx.events.done(None, **answer_record(answer))
    return 0
