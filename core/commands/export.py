"""``doctune export``: turn a training run into verified GGUF files for llama.cpp, Ollama and LM Studio."""
from __future__ import annotations

from doctune.core.commands import CommandContext, UsageError, add_command
from doctune.core.exitcodes import ExitCode


def register(sub) -> None:
    parser = add_command(sub, "export", cmd_export,
                         "Merge a training run's adapter and write verified GGUF files (plus an Ollama Modelfile).")
    parser.add_argument("--run", metavar="RUN", help="training run id (default: the latest finished run)")
    parser.add_argument("--base", action="store_true",
                        help="export the student's base model instead (what the base systems of ask, compare and "
                             "eval run; once, kept in cache/base/); default format: [rag] gguf_format")
    parser.add_argument("--formats", metavar="LIST",
                        help="comma-separated GGUF formats, e.g. f16,q8_0,q4_k_m; add 'lora' for the adapter as a "
                             "GGUF LoRA adapter (llama.cpp --lora / lora_path) (default: [export] formats)")


def cmd_export(ctx: CommandContext) -> int:
    from doctune.core.export import ExportParams, run
    from doctune.core.records import ExportLayout

    project = ctx.project()
    formats = [f.strip() for f in ctx.args.formats.split(",") if f.strip()] if ctx.args.formats else None
    if ctx.args.base:
        return _export_base(ctx, project, formats or [project.config.rag.gguf_format])
    params = ExportParams(project_dir=project.root, run_id=ctx.args.run, formats=formats)
    result = run(params, events=ctx.events, cancel=ctx.cancel)
    ctx.events.done(result.message(), run_id=result.run_id, export_dir=str(result.export_dir), ready=result.ready,
                    files={fmt: str(path) for fmt, path in result.files.items()})
    if not ctx.jsonl:
        ctx.print(result.usage, markup=False, highlight=False)
        ctx.print(f"Verification report: {ExportLayout(result.export_dir).verification_text}", markup=False)
    return ExitCode.OK if result.all_ready else ExitCode.PARTIAL


def _export_base(ctx: CommandContext, project, formats: list[str]) -> int:
    from doctune.core.export import base_gguf

    if ctx.args.run:
        raise UsageError("--base exports the student's base model; it takes no --run.")
    paths = [base_gguf(project, fmt=fmt, events=ctx.events.child("export"), cancel=ctx.cancel) for fmt in formats]
    ctx.events.done(f"The base model is ready: {', '.join(str(path) for path in paths)}",
                    window_message="The base model is exported and verified: the base panes of the Compare page answer with it.", files=[str(path) for path in paths])
    return ExitCode.OK
