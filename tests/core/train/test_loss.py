"""The training losses compute the output layer at the learned positions only (``logits_to_keep``): they must equal,
value and gradient, the losses computed from every position's logits. Real tiny models of each exported family,
real peft, a packed row of several examples."""
from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from doctune.core.train import data as packing
from doctune.core.train.step import _distillation_loss, _next_token_loss


def _adapted(folder):
    """The tiny model under a LoRA adapter whose update is not zero (so adapter on and off differ)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.config.use_cache = False  # as training loads it: with a cache, transformers drops the packed rows' mask
    config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def _row(vocab: int, with_teacher: bool) -> list[packing.Example]:
    """Three packed examples: a prompt, then an answer that carries loss; with a teacher view (a longer prompt, the
    same answer) on all but the last."""
    rng = random.Random(3)
    row = []
    for i, (prompt, answer) in enumerate(((17, 5), (30, 9), (11, 4))):
        answer_ids = [rng.randrange(vocab) for _ in range(answer)]
        ids = [rng.randrange(vocab) for _ in range(prompt)] + answer_ids
        example = packing.Example(f"q{i}", "qa", ids, [False] * prompt + [True] * answer)
        if with_teacher and i < 2:
            teacher_prompt = prompt + 12
            example.teacher_ids = [rng.randrange(vocab) for _ in range(teacher_prompt)] + answer_ids
            example.teacher_mask = [False] * teacher_prompt + [True] * answer
        row.append(example)
    return row


def _full_logits_distillation(model, batch, objective: str):
    """The distillation loss as it was computed before: from every position's logits."""
    logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
    labels = batch["labels"][0, 1:]
    learned = labels != packing.IGNORE
    next_token = F.cross_entropy(logits[:-1], labels, ignore_index=packing.IGNORE, reduction="none")
    with torch.no_grad(), model.disable_adapter():
        teacher = model(input_ids=batch["teacher_input_ids"], position_ids=batch["teacher_position_ids"]).logits[0]
    teacher_log = F.log_softmax(teacher[batch["teacher_index"]], dim=-1)
    student_log = F.log_softmax(logits[batch["student_index"]], dim=-1)
    divergence = (teacher_log.exp() * (teacher_log - student_log)).sum(-1)
    distilled = torch.zeros_like(learned)
    distilled[batch["student_index"]] = True
    kept = learned if objective == "mix" else learned & ~distilled
    return ((next_token * kept).sum() + divergence.sum()) / learned.sum()


def _value_and_gradients(model, loss_of) -> tuple[float, list[torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = loss_of()
    loss.backward()
    return float(loss.detach()), [p.grad.clone() for p in model.parameters() if p.requires_grad]


def _assert_same(ours: tuple[float, list[torch.Tensor]], reference: tuple[float, list[torch.Tensor]]) -> None:
    assert ours[0] == pytest.approx(reference[0], rel=1e-5)
    assert len(ours[1]) == len(reference[1])
    for mine, theirs in zip(ours[1], reference[1]):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("family", ["qwen2", "llama", "qwen3", "mistral"])
def test_the_next_token_loss_equals_transformers_loss_from_every_logit(tiny_model, family):
    model = _adapted(tiny_model(family))
    batch = packing.collate(_row(model.config.vocab_size, with_teacher=False))
    session = SimpleNamespace(trained=model, model=model)

    ours = _value_and_gradients(model, lambda: _next_token_loss(session, batch))
    reference = _value_and_gradients(model, lambda: model(**batch).loss)

    _assert_same(ours, reference)
    assert int((batch["labels"] != packing.IGNORE).sum()) == 5 + 9 + 4  # the loss ran on the answers only


@pytest.mark.parametrize("objective", ["distill", "mix"])
def test_the_distillation_loss_equals_its_value_from_every_logit(tiny_model, objective):
    model = _adapted(tiny_model("qwen2"))
    batch = packing.collate(_row(model.config.vocab_size, with_teacher=True))
    session = SimpleNamespace(trained=model, model=model)

    ours = _value_and_gradients(model, lambda: _distillation_loss(session, batch, objective))
    reference = _value_and_gradients(model, lambda: _full_logits_distillation(model, batch, objective))

    _assert_same(ours, reference)
    assert len(batch["student_index"]) == 5 + 9  # two of the three answers have a teacher view
