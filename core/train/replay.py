"""Replay: the base student's own answers to general prompts, mixed into training.

Training on a few documents makes a small model forget how to answer anything
else. Replaying its own answers to varied general prompts (bundled in
``resources/replay_prompts.txt``) holds that behaviour in place without any
outside data. The answers are generated once per student and cached in the
project (``cache/replay/<key>.jsonl``, keyed by the student's fingerprint and
the answer length; append-only, so an interrupted generation resumes where it
stopped), in batches, and only as many as the mix's replay share needs.
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


def _item(record: dict) -> TrainingItem:
    return TrainingItem(id=f"replay-{record['id']}", kind="qa", recipe="replay",
                        messages=[{"role": "user", "content": record["prompt"]},
                                  {"role": "assistant", "content": record["answer"]}])


def _cached_prefix(wanted: list[str], cached: dict[str, dict], tokens_of) -> tuple[list[TrainingItem], int, int]:
    """Items of the cached answers in prompt order up to the first prompt not answered yet; their tokens; and
    where that first unanswered prompt is (``len(wanted)`` when all are)."""
    items, tokens = [], 0
    for index, prompt in enumerate(wanted):
        record = cached.get(_prompt_id(prompt))
        if record is None:
            return items, tokens, index
        if record["answer"]:
            items.append(_item(record))
            tokens += tokens_of(items[-1])
    return items, tokens, len(wanted)


def replay_items(model, tokenizer, *, student_folder: Path, cache_dir: Path, prompts: int, max_new_tokens: int,
                 events: Events, cancel: CancelToken, tokens_wanted: int | None = None) -> list[TrainingItem]:
    """Replay items for this student, generating (and caching) the answers not cached yet.

    With ``tokens_wanted`` (the replay tokens one epoch of the mix takes) only as many prompts are answered as
    that needs, in the bundled order, at most ``prompts``: a small project no longer waits for 200 answers
    (~12 minutes on a CPU) to replay a few hundred tokens. A bigger mix later answers more, reusing the cache.
    """
    from doctune.core.train.data import tokenize_qa

    counted: dict[str, int] = {}

    def tokens_of(item: TrainingItem) -> int:
        if item.id not in counted:
            counted[item.id] = tokenize_qa(tokenizer, item, "replay").n_tokens
        return counted[item.id]

    path = cache_file(cache_dir, student_folder, max_new_tokens)
    wanted = bundled_prompts(prompts)
    cached = {record["id"]: record for record in read_jsonl(path)}
    items, tokens, first_missing = _cached_prefix(wanted, cached, tokens_of)
    needed = tokens_wanted if tokens_wanted is not None else float("inf")
    if tokens >= needed or first_missing == len(wanted):
        return _enough(items, needed, tokens_of)
    guess = len(wanted) - first_missing
    if tokens_wanted is not None:  # an answer of about half its token limit, plus its prompt
        guess = min(guess, max(1, -(-(tokens_wanted - tokens) // (max_new_tokens // 2 + 24))))
    events.log(f"Generating replay answers from the base student (once per student, about {guess} prompts)")
    tracker = events.tracker(guess, unit="prompts", stage="train.replay")
    with JsonlAppender(path) as log:
        while tokens < needed and first_missing < len(wanted):
            cancel.raise_if_cancelled()
            chunk = [p for p in wanted[first_missing:] if _prompt_id(p) not in cached][:GENERATION_BATCH]
            answers = _generate(model, tokenizer, chunk, max_new_tokens, cancel)
            records = [{"schema_version": REPLAY_SCHEMA_VERSION, "id": _prompt_id(p), "prompt": p, "answer": a}
                       for p, a in zip(chunk, answers)]
            log.append_many(records)
            cached.update({r["id"]: r for r in records})
            tracker.advance(min(len(chunk), max(0, guess - tracker.done)))
            items, tokens, first_missing = _cached_prefix(wanted, cached, tokens_of)
    return _enough(items, needed, tokens_of)


def _enough(items: list[TrainingItem], needed: float, tokens_of) -> list[TrainingItem]:
    """The shortest prefix of ``items`` with ``needed`` tokens (all of them when they have fewer)."""
    total = 0
    for count, item in enumerate(items, 1):
        total += tokens_of(item)
        if total >= needed:
            return items[:count]
    return items
