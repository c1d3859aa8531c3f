"""Replay: the base student's own answers to general prompts, mixed into training.

Training on a few documents makes a small model forget how to answer anything
else. Replaying its own answers to varied general prompts (bundled in
``resources/replay_prompts.txt``) holds that behaviour in place without any
outside data. The answers are generated once per student and cached in the
project (``cache/replay/<key>.jsonl``, append-only, so an interrupted
generation resumes where it stopped).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from doctune.core.events import CancelToken, Events
from doctune.core.fsio import JsonlAppender, read_jsonl
from doctune.core.items import TrainingItem
from doctune.core.resources import resource_path

REPLAY_SCHEMA_VERSION = 1
GENERATION_BATCH = 8


def bundled_prompts(limit: int) -> list[str]:
    lines = resource_path("replay_prompts.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()][:limit]


def student_fingerprint(folder: Path) -> str:
    """Identifies the student's weights cheaply: config plus weight file names and sizes."""
    digest = hashlib.sha256((folder / "config.json").read_bytes())
    for weights in sorted(folder.glob("*.safetensors")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def cache_file(cache_dir: Path, student_folder: Path, max_new_tokens: int) -> Path:
    key = f"{student_fingerprint(student_folder)}-{max_new_tokens}"
    return cache_dir / "replay" / f"{key}.jsonl"


def _prompt_id(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


def _stop_when_cancelled(cancel: CancelToken):
    """A transformers stopping criterion that ends ``generate`` at the next token once ``cancel`` is set
    (a batch of replay answers took ~30 s to notice a cancel)."""
    import torch
    from transformers import StoppingCriteria

    class StopWhenCancelled(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
            return torch.full((input_ids.shape[0],), cancel.cancelled, dtype=torch.bool, device=input_ids.device)

    return StopWhenCancelled()


def _generate(model, tokenizer, prompts: list[str], max_new_tokens: int, cancel: CancelToken) -> list[str]:
    import torch
    from transformers import StoppingCriteriaList

    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                           add_generation_prompt=True) for p in prompts]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # generation continues the prompts' right ends
    try:
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    finally:
        tokenizer.padding_side = side
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                             else tokenizer.eos_token_id,
                             stopping_criteria=StoppingCriteriaList([_stop_when_cancelled(cancel)]))
    cancel.raise_if_cancelled()  # answers cut short by a cancel are never cached
    new_tokens = out[:, batch["input_ids"].shape[1]:]
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


def replay_items(model, tokenizer, *, student_folder: Path, cache_dir: Path, prompts: int, max_new_tokens: int,
                 events: Events, cancel: CancelToken) -> list[TrainingItem]:
    """Replay items for this student, generating (and caching) the answers not cached yet."""
    path = cache_file(cache_dir, student_folder, max_new_tokens)
    wanted = bundled_prompts(prompts)
    cached = {record["id"]: record for record in read_jsonl(path)}
    missing = [p for p in wanted if _prompt_id(p) not in cached]
    if missing:
        events.log(f"Generating replay answers from the base student for {len(missing)} prompts (once per student)")
        tracker = events.tracker(len(missing), unit="prompts", stage="train.replay")
        with JsonlAppender(path) as log:
            for start in range(0, len(missing), GENERATION_BATCH):
                cancel.raise_if_cancelled()
                chunk = missing[start:start + GENERATION_BATCH]
                answers = _generate(model, tokenizer, chunk, max_new_tokens, cancel)
                records = [{"schema_version": REPLAY_SCHEMA_VERSION, "id": _prompt_id(p), "prompt": p, "answer": a}
                           for p, a in zip(chunk, answers)]
                log.append_many(records)
                cached.update({r["id"]: r for r in records})
                tracker.advance(len(chunk))
    items = []
    for prompt in wanted:
        record = cached[_prompt_id(prompt)]
        if record["answer"]:
            items.append(TrainingItem(id=f"replay-{record['id']}", kind="qa", recipe="replay",
                                      messages=[{"role": "user", "content": prompt},
                                                {"role": "assistant", "content": record["answer"]}]))
    return items
