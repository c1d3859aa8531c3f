"""``doctune compare``: several systems answer the same question, side by side."""
from __future__ import annotations

import sys

from doctune.core.commands import CommandContext, UsageError, add_command
from doctune.core.commands.answers import answer_record, prepare_base_model, stats

DEFAULT_COMPARE = "tuned,base+rag"


def register(sub) -> None:
    compare = add_command(sub, "compare", cmd_compare, "Ask several systems the same question and compare them.")
    compare.add_argument("question", help="the question")
    compare.add_argument("--systems", default=DEFAULT_COMPARE,
                         help=f"comma-separated: base, tuned, base+rag, tuned+rag or PATH.gguf[+rag] (default: {DEFAULT_COMPARE})")
    compare.add_argument("-k", "--k", type=int, default=None, help="chunks retrieved for +rag systems (default: rag.k)")


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
    prepare_base_model(ctx, project, names)
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
            ctx.events.metric(system=system.name, **{k: v for k, v in answer_record(system.last_answer).items()
                                                     if k in ("ttft_s", "tokens_per_s", "context_tokens", "completion_tokens")})
    finally:
        for backend in backends.values():
            backend.close()
    if not ctx.jsonl:
        _print_side_by_side(ctx, answers)
    ctx.events.done(None, question=ctx.args.question, answers=[answer_record(answer) for answer in answers])
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
    table.add_row(*[Text(stats(answer)) for answer in answers])
    ctx.print(table)
