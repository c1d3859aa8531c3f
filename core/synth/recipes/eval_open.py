"""``eval_open``: held-out open questions with a reference answer, with prompts of their own; written to
``eval/``, never trained on."""
from __future__ import annotations

from doctune.core.synth import schemas
from doctune.core.synth.prompts import load_prompt
from doctune.core.synth.tasks import Draft, GenerationContext, Recipe, Task, Usage, passage_values


def run(task: Task, ctx: GenerationContext, usage: Usage) -> Draft:
    prompt = load_prompt("eval_open")
    data = ctx.ask(prompt.messages(**passage_values(task)), schemas.open_schema(ctx.settings), task, usage)
    return Draft(task, "open", data, prompt.hash, usage)


RECIPE = Recipe(
    name="eval_open", label="Held-out open questions", order=120, purpose="eval", output="open", run=run,
    description="Held-out open questions with reference answers, judged by the teacher (never trained on).",
    call_schemas=lambda settings: [schemas.open_schema(settings)],
    count=lambda settings: settings.eval_open_per_chunk,
)
