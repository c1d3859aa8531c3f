"""``doctune export``: turn a training run into verified GGUF files for llama.cpp, Ollama and LM Studio."""
from __future__ import annotations

from doctune.core.cli import CommandContext, add_command
from doctune.core.exitcodes import ExitCode


def register(sub) -> None:
    parser = add_command(sub, "export", cmd_export,
                         "Merge a training run's adapter and write verified GGUF files (plus an Ollama Modelfile).")
    parser.add_argument("--run", metavar="RUN", help="training run id (default: the latest finished run)")
    parser.add_argument("--formats", metavar="LIST",
                        help="comma-separated GGUF formats, e.g. f16,q8_0,q4_k_m; add 'lora' for the adapter as a "
                             "GGUF LoRA adapter (llama.cpp --lora / lora_path) (default: [export] formats)")


def cmd_export(ctx: CommandContext) -> int:
    from doctune.core.export import ExportParams, run

    project = ctx.project()
    formats = [f for f in ctx.args.formats.split(",") if f.strip()] if ctx.args.formats else None
    params = ExportParams(project_dir=project.root, run_id=ctx.args.run, formats=formats)
    result = run(params, events=ctx.events, cancel=ctx.cancel)
    if not ctx.jsonl:
        ctx.print(result.usage, markup=False, highlight=False)
        ctx.print(f"Verification report: {result.export_dir / 'verification.txt'}", markup=False)
    return ExitCode.OK if result.all_ready else ExitCode.PARTIAL
