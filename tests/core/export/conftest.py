"""Training runs for export tests, made directly with peft on the tiny models."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

QA = [
    ("Who founded the Quintrel Foundry?", "Oswin Tarrabeck."),
    ("Where does the Azmerrin river end?", "In the Sarnelle delta."),
    ("What is zorvanite?", "A blue glowing mineral."),
    ("When is the Lanternfall festival?", "On the first frost."),
    ("Which game uses a hex board?", "Tessarch."),
    ("What does the Grellan Point lighthouse guard?", "The northern reefs."),
]


def _chat(tokenizer, question: str, answer: str | None = None) -> str:
    messages = [{"role": "user", "content": question}]
    if answer is None:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": answer}], tokenize=False)


def _train(model, tokenizer, steps: int) -> None:
    """Teach the QA pairs, all in each step (loss on the answers only), as a training run would."""
    import torch

    rows = []
    for question, answer in QA:
        prompt = tokenizer.encode(_chat(tokenizer, question), add_special_tokens=False)
        full = tokenizer.encode(_chat(tokenizer, question, answer), add_special_tokens=False)
        rows.append((full, [-100] * len(prompt) + full[len(prompt):]))
    width = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([r[0] + [pad] * (width - len(r[0])) for r in rows])
    labels = torch.tensor([r[1] + [-100] * (width - len(r[1])) for r in rows])
    mask = torch.tensor([[1] * len(r[0]) + [0] * (width - len(r[0])) for r in rows])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=4e-3)
    model.train()
    for _ in range(steps):
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


@pytest.fixture
def make_run(tiny_model):
    """``make_run(project, "qwen2", steps=0, rslora=False)`` → run folder with a finished LoRA adapter.

    ``steps=0``: a random (non-zero) adapter, so the merge changes every adapted weight;
    ``steps>0``: an adapter (plus trained embeddings/output) that learned ``QA``.
    """
    def build(project, family: str = "qwen2", steps: int = 0, run_id: str = "run-1", rslora: bool = False) -> Path:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        base = tiny_model(family)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(base)
        trained = steps > 0
        config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM",
                            init_lora_weights=trained, use_rslora=rslora,
                            modules_to_save=["embed_tokens", "lm_head"] if trained else None,
                            ensure_weight_tying=trained and bool(model.config.tie_word_embeddings))
        model = get_peft_model(model, config)
        if trained:
            _train(model, tokenizer, steps)
        run_dir = Path(project.runs_dir) / run_id
        model.save_pretrained(run_dir / "adapter")
        tokenizer.save_pretrained(run_dir / "adapter")
        record = {"schema_version": 1, "run_id": run_id, "base_model": str(base), "student_folder": str(base)}
        (run_dir / "config.json").write_text(json.dumps({**record, "student": {"model": str(base)}}))
        (run_dir / "summary.json").write_text(json.dumps({**record, "status": "complete", "finished_at": time.time()}))
        return run_dir

    return build


@pytest.fixture
def qa_pairs():
    return QA
