"""From training items to packed token rows: the mix, the loss mask, the positions.

- QA items are rendered with the student's own chat template; only the
  assistant turns (including their end-of-turn token) carry loss. A QA item
  without a system message is rendered as the closed-book chat and the
  evaluation ask it: DocTune's closed-book system prompt first
  (``doctune.core.chat.prompt.with_closed_book_system``, the builder chat and
  evaluation use). Why: trained without it, a student scored 54% on held-out
  multiple choice asked with it and 81% asked without (issue 13). Measured on
  the tiny Qwen2 student, 40 QA pairs, 300 steps, greedy exact match asked
  without / with the system prompt: trained without it 100% / 70%; trained
  with it 100% / 100%; each epoch half of the items with it 20% / 18% (a
  student too small to learn two forms). So always with it: the form DocTune
  asks in, and the student still answers without it.
- Document items are continued-pretraining text with the title as a prefix,
  ending in EOS; every token carries loss.
- The plan depends on the items, not on the order they were written in
  (synthesis appends in completion order): examples are sorted by item id
  before mixing, and the items fingerprint is order-free.
- The epoch mix repeats the smaller of QA and documents until their tokens
  stand in the configured ratio, then adds replay items up to the replay
  fraction of all tokens.
- With ``[train] objective = "distill"`` or ``"mix"``, a QA item that asks one
  question about a chunk also gets a *teacher view*: the same chat as base +
  RAG asks it (DocTune's RAG system prompt, the chunk as source [1]). The
  student learns the teacher's token distribution over the answer, computed by
  the same model with the adapter off (context distillation: Knowledge
  Modules, arXiv 2503.08727; prompt distillation, arXiv 2412.14964). A view is
  kept only when the answer's tokens are the same in both renderings and it
  fits in ``max_seq_len``; other items train by next-token loss.
- With ``[train] open_book_fraction`` above 0, that share of the question-answer
  items is also trained *open book*, as base + RAG asks it: DocTune's RAG
  system prompt, the item's own chunk among ``open_book_distractors`` chunks of
  other documents (first for ``open_book_source_first`` of them, where DocTune's
  search ranks a question's own passage; otherwise in a random order), and the
  answer citing its source's number. Closed-book tuning alone cost the tuned
  student some of its reading (tuned + RAG below base + RAG in the knowledge
  lab); training with the source and distractors in the prompt keeps it (RAFT,
  arXiv 2403.10131). These examples are added to every epoch once, outside the
  QA-to-document ratio.
- Sequences are packed into rows of at most ``batch_tokens`` tokens, one row
  per step and process, with no padding at all. ``position_ids`` restart at 0
  for each sequence, which transformers turns into a block-diagonal causal mask
  (sdpa/eager) or varlen attention (flash-attention), so no token attends
  across items; the first token of each sequence gets no label, so no item is
  trained to predict from the one before it.
"""
from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from doctune.core.chat import with_closed_book_system, with_sources
from doctune.core.items import TrainingItem
from doctune.core.rag import Hit

IGNORE = -100
Source = Literal["qa", "document", "replay", "open_book"]
RENDERING_VERSION = 2
"""Part of the plan fingerprint: 2 = QA items with DocTune's closed-book system prompt, examples sorted by item id.
A run planned under another rendering cannot be resumed with this one."""


@dataclass
class Example:
    item_id: str
    source: Source
    input_ids: list[int]
    loss_mask: list[bool]
    teacher_ids: list[int] | None = None  # distillation: the chat with its source in the prompt (see above)
    teacher_mask: list[bool] | None = None  # the answer's tokens in ``teacher_ids``

    @property
    def n_tokens(self) -> int:
        return len(self.input_ids)


@dataclass
class TokenizeReport:
    examples: list[Example] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # nothing left to learn after truncation


def _render(tokenizer, messages: list[dict], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def _content_span(text: str, content: str, cursor: int, end_of_turn: str | None) -> tuple[int, int]:
    """Where ``content`` (and the end-of-turn token right after it) sits in ``text``, searching from ``cursor``."""
    start = text.find(content, cursor)
    if start < 0:
        return cursor, cursor
    end = start + len(content)
    if end_of_turn and text.startswith(end_of_turn, end):
        end += len(end_of_turn)
    return start, end


def _assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered chat and the character spans of each assistant turn.

    Renders the chat up to each assistant turn with and without that turn; the
    difference is what the assistant says, plus the template's end-of-turn.
    Some templates render a turn differently once later turns follow (Qwen3
    drops the think block of earlier answers); then the rendering is not a
    prefix of the whole chat, and the answer text itself is located instead.
    """
    full = _render(tokenizer, messages, generation_prompt=False)
    spans = []
    cursor = 0
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:index], generation_prompt=True)
        through = _render(tokenizer, messages[: index + 1], generation_prompt=False)
        if full.startswith(through) and through.startswith(before):
            span = (len(before), len(through))
        else:
            span = _content_span(full, message["content"], cursor, tokenizer.eos_token)
        spans.append(span)
        cursor = span[1]
    return full, spans


def _encode_chat(tokenizer, messages: list[dict]) -> tuple[list[int], list[bool]]:
    """The chat's token ids, and which of them are the assistant's (its turns and their end-of-turn token)."""
    text, spans = _assistant_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = [any(start <= begin < end for start, end in spans) for begin, _ in encoded["offset_mapping"]]
    return list(encoded["input_ids"]), mask


def tokenize_qa(tokenizer, item: TrainingItem, source: Source = "qa") -> Example:
    """A QA item as DocTune asks it (its closed-book system prompt first, unless the item brings a system message);
    replay as the base student answered it, without one."""
    messages = [m.model_dump() for m in item.messages]
    if source == "qa":
        messages = with_closed_book_system(messages)
    ids, mask = _encode_chat(tokenizer, messages)
    return Example(item.id, source, ids, mask)


def _learned(ids: Sequence[int], mask: Sequence[bool]) -> list[int]:
    """The tokens that carry loss (never the first: nothing predicts it)."""
    return [token for token, keep in zip(ids[1:], mask[1:]) if keep]


def with_teacher_view(tokenizer, item: TrainingItem, example: Example, source: Hit, max_seq_len: int) -> Example:
    """``example`` (a closed-book QA example of ``item``) with its teacher view: the same answer after base + RAG's
    prompt with ``source``. Unchanged when the chat has no such form, the view is longer than ``max_seq_len``, or
    the answer's tokens differ between the two renderings (the distributions could not be compared token by
    token)."""
    messages = with_sources([m.model_dump() for m in item.messages], [source])
    if messages is None:
        return example
    ids, mask = _encode_chat(tokenizer, messages)
    if len(ids) > max_seq_len or _learned(ids, mask) != _learned(example.input_ids, example.loss_mask):
        return example
    return replace(example, teacher_ids=ids, teacher_mask=mask)


def open_book_example(tokenizer, item: TrainingItem, oracle: Hit, distractors: Sequence[Hit], *, rng: random.Random,
                      max_seq_len: int, source_first: float = 0.0) -> Example | None:
    """``item`` asked as base + RAG asks it: its source ``oracle`` among ``distractors`` (shuffled by ``rng``) in
    DocTune's RAG prompt, the answer ending with the oracle's number in brackets; with probability ``source_first``
    the oracle comes first, as the search ranks it for a question about it. Distractors are left out, last first,
    until it fits ``max_seq_len``; None when it cannot fit or the chat is not one question and its answer."""
    sources = [oracle, *distractors]
    rng.shuffle(sources)
    if source_first and rng.random() < source_first:
        sources.insert(0, sources.pop(sources.index(oracle)))
    while True:
        number = sources.index(oracle) + 1
        answered = [m.model_dump() for m in item.messages]
        if answered and answered[-1].get("role") == "assistant":
            answered[-1]["content"] = f"{str(answered[-1]['content']).rstrip()} [{number}]"
        messages = with_sources(answered, sources)
        if messages is None:
            return None
        ids, mask = _encode_chat(tokenizer, messages)
        if len(ids) <= max_seq_len:
            return Example(f"{item.id}#open", "open_book", ids, mask)
        if len(sources) == 1:
            return None
        sources.remove(next(hit for hit in reversed(sources) if hit is not oracle))


def tokenize_document(tokenizer, item: TrainingItem) -> Example:
    text = f"{item.title.strip()}\n\n{item.text.strip()}" if item.title.strip() else item.text.strip()
    ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return Example(item.id, "document", ids, [True] * len(ids))


def tokenize_items(tokenizer, items: Iterable[TrainingItem], max_seq_len: int, source_of=None) -> TokenizeReport:
    """Tokenize items; truncate those longer than ``max_seq_len`` and drop those left with no loss."""
    report = TokenizeReport()
    for item in items:
        source = source_of(item) if source_of else item.kind
        example = tokenize_document(tokenizer, item) if item.kind == "document" else tokenize_qa(tokenizer, item, source)
        if example.n_tokens > max_seq_len:
            example.input_ids = example.input_ids[:max_seq_len]
            example.loss_mask = example.loss_mask[:max_seq_len]
            report.truncated.append(item.id)
        if sum(example.loss_mask[1:]) == 0:
            report.dropped.append(item.id)
            continue
        report.examples.append(example)
    return report


# ----- the mix ---------------------------------------------------------------------

def _tokens(examples: Sequence[Example]) -> int:
    return sum(e.n_tokens for e in examples)


def _repeat_to(examples: list[Example], factor: float, rng: random.Random) -> list[Example]:
    """``factor`` ≥ 1 copies of the list: whole repeats plus a random share for the fraction."""
    whole = int(factor)
    out = examples * whole
    extra = round((factor - whole) * len(examples))
    return out + rng.sample(examples, extra)


def _take_tokens(pool: list[Example], tokens: int, rng: random.Random) -> list[Example]:
    """Replay examples (cycling through shuffled copies) until ``tokens`` are reached."""
    if tokens <= 0 or not pool:
        return []
    taken: list[Example] = []
    total = 0
    while total < tokens:
        order = pool[:]
        rng.shuffle(order)
        for example in order:
            if total >= tokens:
                break
            taken.append(example)
            total += example.n_tokens
    return taken


def replay_tokens_per_epoch(qa: Sequence[Example], documents: Sequence[Example], *, qa_to_document_ratio: float,
                            replay_fraction: float, open_book: Sequence[Example] = ()) -> int:
    """The replay tokens one epoch of ``epoch_mix`` takes: how many replay answers are worth generating."""
    qa_tokens, doc_tokens = _tokens(qa), _tokens(documents)
    if qa and documents:
        wanted_qa = qa_to_document_ratio * doc_tokens
        core = wanted_qa + doc_tokens if qa_tokens < wanted_qa else qa_tokens + qa_tokens / qa_to_document_ratio
    else:
        core = qa_tokens + doc_tokens
    core += _tokens(open_book)
    return round(replay_fraction / (1 - replay_fraction) * core)


def epoch_mix(qa: list[Example], documents: list[Example], replay: list[Example], *,
              qa_to_document_ratio: float, replay_fraction: float, rng: random.Random,
              open_book: Sequence[Example] = ()) -> list[Example]:
    """One epoch: QA and documents in the token ratio, each open-book example once, replay at its fraction,
    shuffled."""
    qa_tokens, doc_tokens = _tokens(qa), _tokens(documents)
    if qa and documents:
        wanted_qa = qa_to_document_ratio * doc_tokens
        if qa_tokens < wanted_qa:
            qa = _repeat_to(qa, wanted_qa / qa_tokens, rng)
        else:
            documents = _repeat_to(documents, qa_tokens / (qa_to_document_ratio * doc_tokens), rng)
    core = qa + documents + list(open_book)
    replay_tokens = round(replay_fraction / (1 - replay_fraction) * _tokens(core))
    mix = core + _take_tokens(replay, replay_tokens, rng)
    rng.shuffle(mix)
    return mix


def pack(examples: Sequence[Example], batch_tokens: int) -> list[list[Example]]:
    """Greedy packing in order: a row is closed when the next sequence would not fit."""
    rows: list[list[Example]] = []
    row: list[Example] = []
    used = 0
    for example in examples:
        if row and used + example.n_tokens > batch_tokens:
            rows.append(row)
            row, used = [], 0
        row.append(example)
        used += example.n_tokens
    if row:
        rows.append(row)
    return rows


def _identity(example: Example) -> str:
    """An example in the plan's fingerprint: its item, and what else shapes it. An open-book example's passages
    are drawn from the project's chunks, so its tokens count too (new documents change it while the items stay)."""
    if example.source == "open_book":
        return f"{example.item_id}:{hashlib.sha256(repr(example.input_ids).encode()).hexdigest()[:12]}"
    return example.item_id + ("+teacher" if example.teacher_ids else "")


@dataclass
class Plan:
    """Every row the run trains on, in order; rows ``[step*world, (step+1)*world)`` make one step."""

    rows: list[list[Example]]
    world_size: int
    epochs_planned: int

    @property
    def total_steps(self) -> int:
        return len(self.rows) // self.world_size

    def rows_for_step(self, step: int) -> list[list[Example]]:
        return self.rows[step * self.world_size:(step + 1) * self.world_size]

    @property
    def total_tokens(self) -> int:
        return sum(e.n_tokens for row in self.rows for e in row)

    def fingerprint(self) -> str:
        digest = hashlib.sha256(f"rendering {RENDERING_VERSION}\n".encode())
        for row in self.rows:
            digest.update("|".join(_identity(e) for e in row).encode())
            digest.update(b"\n")
        return digest.hexdigest()[:16]

    def count_by_source(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for row in self.rows:
            for example in row:
                entry = counts.setdefault(example.source, {"sequences": 0, "tokens": 0})
                entry["sequences"] += 1
                entry["tokens"] += example.n_tokens
        return counts


def build_plan(qa: list[Example], documents: list[Example], replay: list[Example], *, qa_to_document_ratio: float,
               replay_fraction: float, batch_tokens: int, epochs: float, max_steps: int, seed: int,
               world_size: int = 1, open_book: Sequence[Example] = ()) -> Plan:
    """The whole run's rows, deterministic in the set of examples and ``seed`` (so a resume replays the same order,
    and two syntheses that wrote the same items in another order plan the same run)."""
    qa, documents, replay, open_book = (sorted(examples, key=lambda e: e.item_id)
                                        for examples in (qa, documents, replay, open_book))
    rows_per_epoch: list[list[list[Example]]] = []
    total_rows = None
    epoch = 0
    while True:
        rng = random.Random(f"{seed}:{epoch}")
        mix = epoch_mix(qa, documents, replay, qa_to_document_ratio=qa_to_document_ratio,
                        replay_fraction=replay_fraction, rng=rng, open_book=open_book)
        rows_per_epoch.append(pack(mix, batch_tokens))
        epoch += 1
        available = sum(len(r) for r in rows_per_epoch)
        if max_steps > 0:
            total_rows = max_steps * world_size
            if available >= total_rows:
                break
        else:
            total_rows = max(world_size, round(epochs * len(rows_per_epoch[0])))
            if epoch >= epochs and available >= total_rows:
                break
    rows = [row for epoch_rows in rows_per_epoch for row in epoch_rows][:total_rows]
    usable = len(rows) - len(rows) % world_size
    return Plan(rows[:usable], world_size, epoch)


def collate(row: Sequence[Example]):
    """One packed row as tensors of shape (1, L): input_ids, position_ids, labels; and the teacher views' tensors
    when an example has one (``_teacher_batch``)."""
    import torch

    input_ids: list[int] = []
    positions: list[int] = []
    labels: list[int] = []
    for example in row:
        input_ids += example.input_ids
        positions += range(example.n_tokens)
        labels += [IGNORE] + [tok if keep else IGNORE
                              for tok, keep in zip(example.input_ids[1:], example.loss_mask[1:])]
    batch = {
        "input_ids": torch.tensor([input_ids], dtype=torch.long),
        "position_ids": torch.tensor([positions], dtype=torch.long),
        "labels": torch.tensor([labels], dtype=torch.long),
    }
    if any(example.teacher_ids for example in row):
        batch |= _teacher_batch(row)
    return batch


def _teacher_batch(row: Sequence[Example]):
    """The row's teacher views packed like the row, and which logits match: ``student_index[i]`` (a position of
    the student row) predicts the same answer token as ``teacher_index[i]`` (of the teacher row)."""
    import torch

    teacher_ids: list[int] = []
    teacher_positions: list[int] = []
    student_index: list[int] = []
    teacher_index: list[int] = []
    offset = 0
    for example in row:
        if example.teacher_ids and example.teacher_mask:
            student_index += [offset + p - 1 for p in range(1, example.n_tokens) if example.loss_mask[p]]
            teacher_index += [len(teacher_ids) + q - 1 for q in range(1, len(example.teacher_ids))
                              if example.teacher_mask[q]]
            teacher_ids += example.teacher_ids
            teacher_positions += range(len(example.teacher_ids))
        offset += example.n_tokens
    return {
        "teacher_input_ids": torch.tensor([teacher_ids], dtype=torch.long),
        "teacher_position_ids": torch.tensor([teacher_positions], dtype=torch.long),
        "student_index": torch.tensor(student_index, dtype=torch.long),
        "teacher_index": torch.tensor(teacher_index, dtype=torch.long),
    }


def items_fingerprint(items: Iterable[TrainingItem]) -> str:
    """The set of items, whatever order they were written in; only what training reads counts (not when an item
    was written or how long its teacher took)."""
    digest = hashlib.sha256()
    for line in sorted(item.model_dump_json(exclude={"created_at", "meta"}) for item in items):
        digest.update(line.encode())
    return digest.hexdigest()[:16]
