"""``doctune synth``: training items from the chunks (``--eval``: held-out questions); ``synth export``."""
from __future__ import annotations

from doctune.core.commands import CommandContext, UsageError, add_command
from doctune.core.exitcodes import ExitCode
from doctune.core.synth.recipes import REGISTRY, TRAIN_RECIPES


def _recipes_help() -> str:
    described = "; ".join(f"{name}: {REGISTRY[name].description}" for name in TRAIN_RECIPES)
    return (f"comma-separated recipes, each optionally with its weight, e.g. qa=1,focal=0.5 ({described}); "
            "default: the project's")


def register(sub) -> None:
    parser = add_command(sub, "synth", cmd_synth,
                         "Generate training data from the documents with the teacher (or export it).")
    parser.add_argument("action", nargs="?", choices=["run", "export"], default="run",
                        help="run (default): generate; export: write the items for other trainers")
    parser.add_argument("--recipes", metavar="NAMES",
                        help=_recipes_help())
    parser.add_argument("--amplification", type=float, metavar="X",
                        help="synthetic tokens to generate per source token, shared among the recipes by weight "
                             "(0: per_chunk items per chunk and recipe); default: the project's [synth] amplification")
    parser.add_argument("--eval", action="store_true",
                        help="write held-out evaluation questions to eval/ (never trained on)")
    parser.add_argument("--dry-run", action="store_true",
                        help="only show the planned calls, tokens, time and cost")
    parser.add_argument("--format", choices=["openai", "sharegpt"], default="openai", help="export: file format")
    parser.add_argument("-o", "--output", metavar="FILE", help="export: where to write (default: synth/export-FORMAT.jsonl)")


def cmd_synth(ctx: CommandContext) -> int:
    if ctx.args.action == "export":
        return _export(ctx)
    from pydantic import ValidationError

    from doctune.core.pipeline import open_teacher
    from doctune.core.synth import SynthParams, run

    project = ctx.project()
    recipes = _recipe_weights(ctx.args.recipes) if ctx.args.recipes else None
    try:
        params = SynthParams(project_dir=project.root, recipes=recipes, eval=ctx.args.eval, dry_run=ctx.args.dry_run,
                             amplification=ctx.args.amplification)
    except ValidationError as exc:
        raise UsageError("; ".join(error["msg"] for error in exc.errors())) from None
    result = run(params, events=ctx.events.child("synth"), cancel=ctx.cancel, open_teacher=open_teacher)
    ctx.events.child("synth").done(result.message(), window_message=result.message(window=True),
                                   **result.as_dict())
    if params.dry_run:
        _print_estimate(ctx, result)
        return 0
    if not ctx.jsonl:
        reasons = ", ".join(f"{name}: {count}" for name, count in {**result.filtered_by_reason,
                                                                   **result.failed_by_reason}.items())
        ctx.print(f"{result.generated} new, {result.already_done} already there, {result.filtered} filtered, "
                  f"{result.failed} failed" + (f" ({reasons})" if reasons else "") + ".")
        if result.failed:
            ctx.print("Failed items are listed in failures.jsonl; re-run to retry them.")
    return ExitCode.PARTIAL if result.failed else ExitCode.OK


def _recipe_weights(text: str) -> dict[str, float] | list[str]:
    """``qa,focal`` (the project's weights) or ``qa=1,focal=0.5`` (these weights)."""
    entries = [entry.strip() for entry in text.split(",") if entry.strip()]
    if not any("=" in entry for entry in entries):
        return entries
    weights: dict[str, float] = {}
    for entry in entries:
        name, _, weight = entry.partition("=")
        try:
            weights[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise UsageError(f"--recipes: '{entry}' is not NAME=WEIGHT with a number as the weight") from None
    return weights


def _print_estimate(ctx: CommandContext, result) -> None:
    if not ctx.jsonl:
        ctx.print(f"{result.planned} item(s) planned, {result.already_done} already done.")


def _export(ctx: CommandContext) -> int:
    from doctune.core.synth import export_items

    path, count = export_items(ctx.project(), ctx.args.format, ctx.args.output)
    ctx.events.done(f"Exported {count} item(s) to {path}", path=str(path), items=count, format=ctx.args.format)
    return 0
