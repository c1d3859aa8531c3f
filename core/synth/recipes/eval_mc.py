"""``eval_mc``: held-out multiple-choice questions (four options, one right), with prompts of their own; written
to ``eval/``, never trained on."""
from __future__ import annotations

from doctune.core.synth import schemas
from doctune.core.synth.prompts import load_prompt
from doctune.core.synth.tasks import Draft, GenerationContext, Recipe, Task, Usage, passage_values


def run(task: Task, ctx: GenerationContext, usage: Usage) -> Draft:
    prompt = load_prompt("eval_mc")
    data = ctx.ask(prompt.messages(**passage_values(task)), schemas.mc_schema(ctx.settings), task, usage)
    return Draft(task, "mc", data, prompt.hash, usage)


RECIPE = Recipe(
    name="eval_mc", label="Held-out multiple choice", order=110, purpose="eval", output="mc", run=run,
    description="Held-out multiple-choice questions, scored exactly (never trained on).",
    call_schemas=lambda settings: [schemas.mc_schema(settings)],
    count=lambda settings: settings.eval_mc_per_chunk,
)
