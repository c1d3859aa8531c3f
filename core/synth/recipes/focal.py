"""``focal``: a question about the passage, then the passage rewritten around that question (focal rewriting,
Synthetic Mixed Training's synthetic documents)."""
from __future__ import annotations

from doctune.core.items import content_hash
from doctune.core.synth import schemas
from doctune.core.synth.prompts import load_prompt
from doctune.core.synth.tasks import Draft, GenerationContext, Recipe, Task, Usage, passage_values


def run(task: Task, ctx: GenerationContext, usage: Usage) -> Draft:
    ask = load_prompt("focal_question")
    rewrite = load_prompt("focal_rewrite")
    values = passage_values(task)
    question = ctx.ask(ask.messages(**values, aspect=ask.pick("aspects", task.index)),
                       schemas.question_schema(ctx.settings), task, usage)["question"]
    data = ctx.ask(rewrite.messages(**values, question=question), schemas.document_schema(ctx.settings),
                   task, usage, salt="rewrite")
    return Draft(task, "document", data, content_hash(ask.hash, rewrite.hash), usage, {"question": question})


RECIPE = Recipe(
    name="focal", label="Focal rewrites", order=20, purpose="train", output="document", run=run,
    description="The passage rewritten to focus on one question about it (focal rewriting).",
    call_schemas=lambda settings: [schemas.question_schema(settings), schemas.document_schema(settings)],
)
