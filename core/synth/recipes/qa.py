"""``qa``: a self-contained question about the passage, its answer and a short explanation (Synthetic Mixed
Training's QA items; trained on the answer tokens only)."""
from __future__ import annotations

from doctune.core.synth import schemas
from doctune.core.synth.prompts import load_prompt
from doctune.core.synth.tasks import Draft, GenerationContext, Recipe, Task, Usage, passage_values


def run(task: Task, ctx: GenerationContext, usage: Usage) -> Draft:
    prompt = load_prompt("qa")
    messages = prompt.messages(**passage_values(task), aspect=prompt.pick("aspects", task.index))
    data = ctx.ask(messages, schemas.qa_schema(ctx.settings), task, usage)
    return Draft(task, "qa", data, prompt.hash, usage)


RECIPE = Recipe(
    name="qa", label="Questions & answers", order=10, purpose="train", output="qa", run=run,
    description="Question–answer pairs with explanations about each passage (Synthetic Mixed Training).",
    call_schemas=lambda settings: [schemas.qa_schema(settings)],
)
