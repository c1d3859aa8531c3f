"""``rephrase``: the passage in one of four styles, cycled by the task's index (WRAP)."""
from __future__ import annotations

from doctune.core.synth import schemas
from doctune.core.synth.prompts import load_prompt
from doctune.core.synth.tasks import Draft, GenerationContext, Recipe, Task, Usage, passage_values


def run(task: Task, ctx: GenerationContext, usage: Usage) -> Draft:
    prompt = load_prompt("rephrase")
    style = prompt.pick("styles", task.index)
    data = ctx.ask(prompt.messages(**passage_values(task), style=style), schemas.document_schema(ctx.settings),
                   task, usage)
    return Draft(task, "document", data, prompt.hash, usage, {"style": style})


RECIPE = Recipe(
    name="rephrase", label="Rephrasings", order=30, purpose="train", output="document", run=run,
    description="The passage rephrased in easy, medium and hard styles and as Q&A (WRAP).",
    call_schemas=lambda settings: [schemas.document_schema(settings)],
)
