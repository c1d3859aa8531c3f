"""What ``search``, ``ask`` and ``compare`` share: the base model prepared before a ``base`` system opens, how hits
and answers are printed, and the JSON records they emit."""
from __future__ import annotations

from typing import Any

from doctune.core.commands import CommandContext


def hit_record(number: int, hit) -> dict[str, Any]:
    return {"rank": number, "chunk_id": hit.chunk_id, "doc_id": hit.doc_id, "doc_title": hit.doc_title,
            "doc_path": hit.doc_path, "page_start": hit.page_start, "page_end": hit.page_end,
            "score": round(hit.score, 6), "text": hit.text}


def snippet(text: str, width: int = 240) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def answer_record(answer) -> dict[str, Any]:
    return {
        "system": answer.system, "answer": answer.text,
        "ttft_s": round(answer.ttft_s, 4) if answer.ttft_s is not None else None,
        "total_s": round(answer.total_s, 4), "completion_tokens": answer.completion_tokens,
        "tokens_per_s": round(answer.tokens_per_s, 2) if answer.tokens_per_s else None,
        "context_tokens": answer.context_tokens, "cited": answer.cited,
        "sources": [hit_record(number, hit) for number, hit in enumerate(answer.sources, 1)],
    }


def stats(answer) -> str:
    ttft = f"{answer.ttft_s:.2f} s" if answer.ttft_s is not None else "–"
    rate = f"{answer.tokens_per_s:.1f}" if answer.tokens_per_s else "–"
    return (f"first token {ttft} · {rate} tokens/s · {answer.completion_tokens} tokens · "
            f"context {answer.context_tokens} tokens")


def prepare_base_model(ctx: CommandContext, project, system_names: list[str]) -> None:
    """Export the student's base model to GGUF first (once; cached) when one of ``system_names`` runs it."""
    from doctune.core.chat import uses_base
    from doctune.core.export import base_gguf

    if any(uses_base(name) for name in system_names):
        base_gguf(project, fmt=project.config.rag.gguf_format, events=ctx.events.child("export"), cancel=ctx.cancel)
