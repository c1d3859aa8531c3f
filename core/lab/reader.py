"""The lab's reader student: a small Qwen2 model pretrained from scratch, offline, on the lab world.

Why it exists: DocTune's claim is that a student tuned on synthetic data about
documents knows them. Random tiny models cannot show it and no real model can
be downloaded here, so the lab builds a student that behaves like a small
pretrained LM in the one way that matters: it **can read** (with a passage in
its context, asked in DocTune's own RAG prompt, it answers from the passage)
and it **can store facts** (it was taught closed-book question answering about
entities it read about), but it **cannot know** a new entity's facts.

What it is trained on, every example in the chat format DocTune asks with
(``core/chat/prompt.py``'s system prompts and source blocks, the evaluation's
multiple-choice prompt):

- documents of the pretraining world (``world.READER_WORLD_SEED``) in varied
  templates, as plain text;
- reading comprehension on **fresh** entities drawn for each example (so
  nothing can be answered from memory): the entity's passage among distractor
  passages, as retrieval returns them, then a question in any phrasing; the
  answer is the value and the source's number (``Velmora [2]``), or a letter
  for a multiple-choice prompt;
- closed-book questions about half of the pretraining entities, every phrasing,
  with and without DocTune's system prompt (knowledge augmentation: Physics of
  Language Models 3.1 found facts become extractable only so), and closed-book
  multiple choice on them.

- before those, in a curriculum (``CURRICULUM``): a fresh entity's fact
  sentences and a question, in a bare user message, from one sentence to the
  whole passage; the kinds above come in later (see ``CURRICULUM`` for why).

Chat examples carry loss on the answer only; documents on every token.
Sequences are packed into rows with positions restarting per sequence (no
attention across examples). The folder it saves is an ordinary Hugging Face
model (safetensors, tokenizer, ChatML template) that ``core/train/student.py``
takes as a local student; ``ensure_reader`` builds it once per machine under
the tiny models' cache root, in a folder named by a fingerprint of this
builder, the world and DocTune's prompts.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doctune.core.fsio import atomic_write_text
from doctune.core.lab import world as lab_world
from doctune.core.lab.world import (
    ATTRIBUTES,
    EXTRA_HELDOUT,
    KIND_ATTRIBUTES,
    Entity,
    Family,
    World,
    capitalise_first,
    fact_sentence,
    make_world,
    multiple_choice,
    render_document,
)

if TYPE_CHECKING:  # pragma: no cover
    from doctune.core.chat.prompt import Counter
    from doctune.core.rag.hits import Hit

Messages = list[dict[str, str]]
FAMILIES: tuple[Family, ...] = ("train", "heldout")
Row = tuple[list[int], list[bool], list[int]]

BUILDER_VERSION = 8
READER_SIZES = {"hidden": 256, "layers": 4, "heads": 8, "kv_heads": 8, "ffn": 768}
"""Eight heads of 32 dimensions, not four of 64 over two key/value groups: in 600k-token runs of the first phases
the lower loss (0.73 against 0.80) and more passages read on 4 options with 7 facts (58% against 46%, n=80)."""
CONTEXT = 1024
"""Model context: DocTune's chat keeps half for the answer, so a RAG prompt has 512 tokens."""
PROMPT_TOKENS = 512
VOCAB_TARGET = 4096
WORLD_ENTITIES = 150
SAME_KIND = 0.8
"""Share of a reading example's distractor passages about an entity of the target's kind."""
DISTRACTORS = (0, 1, 1, 2, 2, 3, 3, 4, 5)
"""How many distractor passages a reading example draws (the prompt budget may show fewer whole)."""
READ_TURNS = 6
"""The most questions one reading example asks of its sources."""
ROW_TOKENS = 512
ROWS_PER_STEP = 2
PACKING_BUFFER = 8
"""Examples waiting to be packed into rows (``_rows``)."""


@dataclass(frozen=True)
class Phase:
    """A stretch of pretraining: its share of the steps, the mix of example kinds, how many facts a ``passage``
    example states and the most distractor passages a reading example shows (each growing from the first to the
    second number over the phase)."""

    share: float
    mix: tuple[tuple[str, float], ...]
    facts: tuple[int, int] = (1, 1)
    distractors: tuple[int, int] = (5, 5)


CURRICULUM: tuple[Phase, ...] = (
    Phase(0.08, (("passage", 1.0),)),
    Phase(0.12, (("passage", 1.0),), facts=(1, 7)),
    Phase(0.11, (("passage", 1.0),), facts=(7, 7)),
    Phase(0.265, (("passage", 0.2), ("read", 0.7), ("document", 0.1)), facts=(7, 7), distractors=(0, 5)),
    Phase(0.225, (("passage", 0.1), ("document", 0.1), ("read", 0.4), ("read_mc", 0.1), ("recall", 0.22),
                  ("recall_mc", 0.08)), facts=(7, 7)),
    Phase(0.20, (("read", 0.8), ("read_mc", 0.2)), facts=(7, 7)),
)
"""Reading is learned in steps. Copying the one value a single sentence states is learned in a few hundred steps
(on 4 options 85% after 290 steps of single sentences; greedy 62% after 585, but 17% when the facts start
growing after 117; these short runs used a tokenizer with GPT-2's splits, before builder 5), then a whole passage after ~1,800 steps of sentences growing to passages; with the
whole passage, DocTune's RAG prompt and distractors from the start the same model stayed at chance for 2,000
steps. So the reader first answers from one sentence, then from more and more of a passage, then in DocTune's
RAG prompt with more and more distractors (0 growing to 5: with at most two throughout that phase it read 73% /
52% / 47% with 0 / 2 / 5 distractors, growing 82% / 73% / 65%), then also learns closed-book facts, and ends on
reading alone while the learning rate decays: 1,200 such steps after builder 6 (which ended on the closed-book
phase) raised its reading with the passage first among three others, as retrieval serves it, from 62% to 78%;
giving reading a larger share of the mixed phases instead (builder 7) raised it to 66% only."""


@dataclass(frozen=True)
class BuildSettings:
    """How much pretraining: tokens seen in all, the peak learning rate, the curriculum of example kinds."""

    tokens: int = 6_200_000
    learning_rate: float = 2e-3
    seed: int = 0
    tokenizer_examples: int = 2000
    """Examples of every kind the tokenizer learns its merges from."""
    curriculum: tuple[Phase, ...] = CURRICULUM

    def phase_at(self, progress: float) -> tuple[Phase, float]:
        """The phase at ``progress`` (0–1 of the steps) and how far into it (0–1)."""
        start = 0.0
        for phase in self.curriculum:
            if progress < start + phase.share or phase is self.curriculum[-1]:
                return phase, min(1.0, max(0.0, (progress - start) / phase.share))
            start += phase.share
        raise ValueError("a curriculum needs at least one phase")

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(kind for phase in self.curriculum for kind, _ in phase.mix))


@dataclass
class Example:
    """Plain text (``answer`` empty: every token is learned), or a chat prompt and its answer, then any further
    turns: (the user's next question as ChatML text, its answer), learned on the answers only."""

    prompt: str
    answer: str = ""
    kind: str = "document"
    turns: tuple[tuple[str, str], ...] = ()


def _grown(span: tuple[int, int], into: float) -> int:
    """From ``span[0]`` at the start of a phase to ``span[1]`` at its end."""
    return round(span[0] + (span[1] - span[0]) * into)


def _any(value: Any) -> Any:
    """An untyped library callable (transformers), called from this strictly typed module."""
    return value


def source_text(entity: Entity, rng: random.Random) -> str:
    """How an entity's document looks as a chunk: the Markdown heading becomes a plain title block."""
    return render_document(entity, rng).replace("# ", "", 1).strip()


def any_question(entity: Entity, attribute: str, rng: random.Random) -> str:
    """``attribute`` of ``entity`` asked in any phrasing the lab's language has (both families and the held-out
    extras): the reader learns the language as a pretrained model has, every paraphrase of a question. Which
    phrasings DocTune trains a student on and which it holds out is the lab teacher's business, on new entities."""
    spec = ATTRIBUTES[attribute]
    return capitalise_first(rng.choice((*spec.train_questions, *spec.heldout_questions, *EXTRA_HELDOUT[attribute]))
                            .format(n=entity.name))


def _hits(passages: list[tuple[Entity, str]]) -> list[Hit]:
    """Entities' passages as retrieval hands them to DocTune's prompt, in order."""
    from doctune.core.rag.hits import Hit

    return [Hit(f"c{i}", entity.id, None, entity.name, None, None, text, 0.0) for i, (entity, text) in enumerate(passages)]


class ExampleMaker:
    """Draws training examples; fresh entities for reading come from an endless sequence of new worlds."""

    def __init__(self, tokenizer: Any, world: World, seed: int, budget: int = PROMPT_TOKENS) -> None:
        self.tokenizer = tokenizer
        self.world = world
        self.rng = random.Random(f"reader-examples-{seed}")
        self.known = world.entities[: len(world.entities) // 2]
        self.counter = _counter(tokenizer, self.render)
        self.budget = budget
        self._fresh: list[Entity] = []
        self._fresh_seed = 10_000 + seed * 1_000_000
        self.mix: tuple[tuple[str, float], ...] = (("read", 1.0),)
        self.most_facts = 7
        self.most_distractors = 5

    def follow(self, phase: Phase, into: float) -> None:
        """Draw examples as ``phase`` asks, ``into`` (0–1) of the way through it."""
        self.mix = phase.mix
        self.most_facts = _grown(phase.facts, into)
        self.most_distractors = _grown(phase.distractors, into)

    def draw(self) -> Example:
        kinds, weights = zip(*self.mix)
        return self.make(self.rng.choices(kinds, weights)[0])

    def fresh(self, kind: str | None = None) -> Entity:
        """An entity never seen before (of ``kind``, when given)."""
        if not self._fresh or (kind is not None and all(e.kind != kind for e in self._fresh)):
            self._fresh_seed += 1
            self._fresh = list(make_world(self._fresh_seed, 60, avoid=self.world).entities)
            self.rng.shuffle(self._fresh)
        if kind is None:
            return self._fresh.pop()
        return self._fresh.pop(max(i for i, entity in enumerate(self._fresh) if entity.kind == kind))

    def make(self, kind: str) -> Example:
        example: Example = getattr(self, f"_{kind}")()
        return example

    def _document(self) -> Example:
        return Example(render_document(self.rng.choice(self.world.entities), self.rng) + "<|endoftext|>")

    def rag_prompt(self, target: Entity, asked: str) -> tuple[str, int]:
        """DocTune's RAG prompt for ``asked`` with the target's passage among distractors, rendered, and the
        target's source number (``sources`` says how they are drawn)."""
        prompt, shown = self.sources_prompt(target, asked)
        return prompt, next(number for number, entity in shown if entity is target)

    def sources_prompt(self, target: Entity, asked: str) -> tuple[str, list[tuple[int, Entity]]]:
        """DocTune's RAG prompt for ``asked`` with the target's passage among 0–``most_distractors`` others, as
        retrieval returns them, rendered; and the source number of every passage the prompt shows whole. Most
        distractors are of the target's kind (``SAME_KIND``): retrieval returns passages like the question's, so
        they state the same attributes and only the name tells the target apart (with random kinds the reader read
        65% among five, but 39% among DocTune's retrieved passages).

        Where the prompt budget would cut the target's passage (the sources after it are dropped first), it goes
        first: an answer must never cite a source the prompt does not show.
        """
        count = self.rng.choice([n for n in DISTRACTORS if n <= self.most_distractors])
        others = [self.fresh(target.kind if self.rng.random() < SAME_KIND else None) for _ in range(count)]
        position = 0 if self.rng.random() < 0.5 else self.rng.randrange(len(others) + 1)
        entities = others[:position] + [target] + others[position:]
        passages = [(e, source_text(e, self.rng)) for e in entities]
        messages = self.messages(asked, _hits(passages))
        if f"[{position + 1}] {target.name}\n{passages[position][1]}" not in messages[-1]["content"]:
            passages.insert(0, passages.pop(position))
            messages = self.messages(asked, _hits(passages))
        content = messages[-1]["content"]
        shown = [(i + 1, e) for i, (e, text) in enumerate(passages) if f"[{i + 1}] {e.name}\n{text}" in content]
        return self.render(messages), shown

    def messages(self, asked: str, hits: list[Hit] | None = None, system: bool = True) -> Messages:
        """DocTune's own prompt for ``asked`` (``assemble``: system prompt, sources cut to the prompt budget)."""
        from doctune.core.chat.prompt import assemble

        prompt = assemble(asked, budget=self.budget, counter=self.counter, sources=hits or (), rag=hits is not None)
        return prompt.messages if system else prompt.messages[1:]

    def render(self, messages: Messages) -> str:
        return str(self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))

    def _question(self, entity: Entity) -> tuple[str, str]:
        attribute = self.rng.choice(KIND_ATTRIBUTES[entity.kind])
        return any_question(entity, attribute, self.rng), entity.fact(attribute).value

    def _mc(self, entity: Entity) -> tuple[str, str]:
        from doctune.core.evaluate.step import mc_prompt

        attribute = self.rng.choice(KIND_ATTRIBUTES[entity.kind])
        mc = multiple_choice(entity, attribute, self.rng, self.rng.choice(FAMILIES))
        return mc_prompt(_McView(mc.question, list(mc.options))), mc.answer

    def _read(self) -> Example:
        """Passages among distractors and up to ``READ_TURNS`` questions, one per turn: the first on the target
        (exactly DocTune's RAG prompt), the others on any passage shown whole, so one prompt teaches many lookups
        and that the name, not the order, tells which passage answers."""
        target = self.fresh()
        first = self._question(target)
        prompt, shown = self.sources_prompt(target, first[0])
        number = {id(entity): n for n, entity in shown}
        asked = [(target, *first)]
        for _ in range(self.rng.randint(1, READ_TURNS) - 1):
            entity = target if self.rng.random() < 0.5 else self.rng.choice(shown)[1]
            asked.append((entity, *self._question(entity)))
        turns = tuple((_turn(q), f"{v} [{number[id(e)]}]") for e, q, v in asked[1:])
        return Example(prompt, f"{first[1]} [{number[id(target)]}]", "read", turns)

    def _passage(self) -> Example:
        """A fresh entity's facts, one sentence each (1 to ``most_facts`` of them), and a question on one: the
        first lesson in reading, asked without DocTune's prompts."""
        target = self.fresh()
        facts = list(target.facts)
        self.rng.shuffle(facts)
        facts = facts[: self.rng.randint(1, max(1, self.most_facts))]
        text = " ".join(fact_sentence(target, fact, self.rng) for fact in facts)
        asked = self.rng.choice(facts)
        q = any_question(target, asked.attribute, self.rng)
        return Example(self.render([{"role": "user", "content": f"{text}\n\n{q}"}]), asked.value, "passage")

    def _read_mc(self) -> Example:
        target = self.fresh()
        asked, letter = self._mc(target)
        return Example(self.rag_prompt(target, asked)[0], letter, "read_mc")

    def _recall(self) -> Example:
        asked, value = self._question(self.rng.choice(self.known))
        return Example(self.render(self.messages(asked, system=self.rng.random() < 0.7)), value, "recall")

    def _recall_mc(self) -> Example:
        asked, letter = self._mc(self.rng.choice(self.known))
        return Example(self.render(self.messages(asked)), letter, "recall_mc")


def _turn(question: str) -> str:
    """A further user turn and the assistant's opening, in ChatML, after an answer."""
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


@dataclass
class _McView:
    """The two fields of a held-out question that ``mc_prompt`` reads."""

    question: str
    options: list[str]


def _counter(tokenizer: Any, render: Callable[[Messages], str]) -> Counter:
    """DocTune's prompt ``Counter`` on a Hugging Face tokenizer, as llama.cpp counts on the exported model."""
    from doctune.core.chat.prompt import Counter

    def ids(text: str) -> list[int]:
        found: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
        return found

    return Counter(count=lambda messages: len(ids(render(messages))), tokens=lambda text: len(ids(text)),
                   truncate=lambda text, n: str(tokenizer.decode(ids(text)[: max(n, 0)])))


def tokenizer_texts(n: int = 2000, seed: int = 0) -> Iterator[str]:
    """Text the reader's tokenizer learns from: the world's documents and every kind of example."""
    from jinja2 import Template

    from doctune.core.tiny import CHATML_TEMPLATE

    chatml = Template(CHATML_TEMPLATE)

    class _Plain:  # renders ChatML and counts bytes (more than tokens: safe) before a tokenizer exists
        def apply_chat_template(self, messages: Messages, tokenize: bool = False,
                                add_generation_prompt: bool = True) -> str:
            return str(chatml.render(messages=messages, add_generation_prompt=add_generation_prompt))

        def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
            return {"input_ids": list(text.encode())}

        def decode(self, ids: list[int]) -> str:
            return bytes(ids).decode(errors="ignore")

    world = make_world(lab_world.READER_WORLD_SEED, WORLD_ENTITIES)
    maker = ExampleMaker(_Plain(), world, seed, budget=PROMPT_TOKENS * 4)
    kinds = BuildSettings().kinds
    for index in range(n):
        example = maker.make(kinds[index % len(kinds)])
        yield example.prompt + example.answer


def build_tokenizer(out_dir: Path, examples: int = 2000) -> Path:
    """Byte-level BPE with ChatML specials, trained on the lab's text, splitting text as DocTune will.

    DocTune loads a Qwen2 student's tokenizer as transformers' Qwen2 tokenizer, which splits text by Qwen2's rules
    (GGUF pre-tokenizer ``qwen2``: every digit apart) whatever ``tokenizer.json`` says, and the export writes the
    same rules for llama.cpp. So the merges are learned on those splits, and ``pretrain`` reads the examples
    through the same class (``student_tokenizer``): a reader trained on other splits (GPT-2's, where "1963" was one
    token) was asked in DocTune in tokens it had barely seen.

    Its merges never join a space to a word: it learns them with spaces split off. So " Velmora" is "Ġ" + the very
    tokens of "Velmora", and an answer, which DocTune tokenizes bare, repeats the passage's tokens instead of other
    ones ("V", "elmora").
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from doctune.core.export.vocab import reference_pre_tokenizer
    from doctune.core.tiny import CHATML_TEMPLATE, SPECIAL_TOKENS

    qwen2_split = reference_pre_tokenizer("qwen2")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(" "), "isolated"), qwen2_split])
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_TARGET, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(tokenizer_texts(examples), trainer)
    tokenizer.pre_tokenizer = qwen2_split
    fast: Any = _any(PreTrainedTokenizerFast)(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token=None, bos_token=None, model_max_length=CONTEXT,
                                   clean_up_tokenization_spaces=False)
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(out_dir)
    return out_dir


def student_tokenizer(tokenizer_dir: Path, config: Any) -> Any:
    """The tokenizer in ``tokenizer_dir`` as DocTune will load it from the reader's folder (its class chosen by the
    model's config)."""
    from transformers import AutoTokenizer

    return _any(AutoTokenizer.from_pretrained)(tokenizer_dir, config=config)


def encode(tokenizer: Any, example: Example) -> tuple[list[int], list[bool]]:
    """Token ids and which of them carry loss; prompt and answer are tokenized apart, as DocTune scores options."""
    prompt_ids = tokenizer(example.prompt, add_special_tokens=False)["input_ids"]
    if not example.answer:
        return prompt_ids, [True] * len(prompt_ids)
    ids: list[int] = list(prompt_ids)
    mask = [False] * len(prompt_ids)
    for asked, answer in ((None, example.answer), *example.turns):
        asked_ids = tokenizer(asked, add_special_tokens=False)["input_ids"] if asked else []
        answer_ids = tokenizer(answer + "<|im_end|>\n", add_special_tokens=False)["input_ids"]
        ids += asked_ids + answer_ids
        mask += [False] * len(asked_ids) + [True] * len(answer_ids)
    return ids, mask


def _learnable(tokenizer: Any, maker: ExampleMaker) -> tuple[list[int], list[bool]]:
    """The next of ``maker``'s examples, encoded and cut to a row, that still has something to learn."""
    while True:
        ids, mask = encode(tokenizer, maker.draw())
        if any(mask[:ROW_TOKENS]):  # else a prompt as long as a row: its answer was cut off
            return ids[:ROW_TOKENS], mask[:ROW_TOKENS]


def _rows(tokenizer: Any, maker: ExampleMaker) -> Iterator[Row]:
    """Endless packed rows of ``maker``'s examples: (ids, loss mask, position ids), each at most ``ROW_TOKENS``.

    A row takes, of the ``PACKING_BUFFER`` examples waiting, the longest that still fits, until none does: taken
    one at a time in order, rows of reading prompts (a few hundred tokens each) were 79–88% full, and a step costs
    the same whatever its rows hold.
    """
    waiting: list[tuple[list[int], list[bool]]] = []
    while True:
        ids: list[int] = []
        mask: list[bool] = []
        positions: list[int] = []
        while True:
            waiting += [_learnable(tokenizer, maker) for _ in range(PACKING_BUFFER - len(waiting))]
            fitting = [i for i, (example_ids, _) in enumerate(waiting) if len(ids) + len(example_ids) <= ROW_TOKENS]
            if not fitting:
                break
            example_ids, example_mask = waiting.pop(max(fitting, key=lambda i: len(waiting[i][0])))
            ids += example_ids
            mask += example_mask
            positions += list(range(len(example_ids)))
        yield ids, mask, positions


def _answer_weights(mask: list[bool], positions: list[int]) -> list[float]:
    """Each learned run of tokens (a document, an answer) weighs 1 in all, shared by its tokens; a run ends where
    the mask changes or the next example starts (position 0).

    Without it a document's hundreds of tokens drown the few tokens of the answers, where reading is learned.
    """
    weights = [0.0] * len(mask)
    start = 0
    while start < len(mask):
        end = start
        while end < len(mask) and mask[end] == mask[start] and (end == start or positions[end] != 0):
            end += 1
        if mask[start]:
            weights[start:end] = [1.0 / (end - start)] * (end - start)
        start = end
    return weights


def _batch(rows: list[Row], pad_id: int) -> tuple[Any, Any, Any, Any, Any]:
    """Padded ids, labels, their weights, positions and a block-diagonal causal mask (a token sees only its own
    example).

    Restarting the positions alone is not enough: transformers' SDPA attention lets every token attend to the
    examples packed before it in the row (at meaningless rotary distances), which keeps a small model from learning
    to look things up in its own prompt.
    """
    import torch

    width = max(len(ids) for ids, _, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    weights = torch.zeros((len(rows), width))
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    segments = torch.full((len(rows), width), -1, dtype=torch.long)
    for row, (ids, mask, pos) in enumerate(rows):
        n = len(ids)
        input_ids[row, :n] = torch.tensor(ids)
        positions[row, :n] = torch.tensor(pos)
        positions[row, n:] = torch.arange(width - n)
        wanted = torch.tensor(ids)
        wanted[~torch.tensor(mask)] = -100
        labels[row, :n] = wanted
        starts = [i for i, p in enumerate(pos) if p == 0]
        labels[row, starts] = -100  # a sequence's first token is never predicted from the one before
        weights[row, :n] = torch.tensor(_answer_weights(mask, pos)) * (labels[row, :n] != -100)
        segments[row, :n] = torch.cumsum(torch.tensor([p == 0 for p in pos]), 0)
    causal = torch.tril(torch.ones(width, width, dtype=torch.bool))
    same = segments[:, :, None] == segments[:, None, :]
    return input_ids, labels, weights, positions, (causal & same)[:, None]


def _learned_loss(model: Any, input_ids: Any, positions: Any, attention: Any, targets: Any, learned: Any) -> Any:
    """The weighted next-token loss, with the output layer applied only where a token is learned.

    Most tokens of a chat example are prompt, learned from by attention but never predicted; skipping their
    logits (a 4,096-way output layer, about a fifth of the model's work) makes a step that much faster.
    """
    import torch

    hidden = model.model(input_ids=input_ids, position_ids=positions, attention_mask=attention).last_hidden_state
    where = learned > 0
    logits = model.lm_head(hidden[:, :-1][where])
    per_token = torch.nn.functional.cross_entropy(logits, targets[where], reduction="none")
    return (per_token * learned[where]).sum() / learned[where].sum()


def pretrain(model_dir: Path, tokenizer_dir: Path, settings: BuildSettings,
             report: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Pretrain the reader from scratch and save it; returns timings and the final loss."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from doctune.core.tiny import padded_vocab_size, tiny_config

    started = time.perf_counter()
    torch.set_num_threads(2)
    torch.manual_seed(settings.seed)
    plain: Any = AutoTokenizer.from_pretrained(tokenizer_dir)
    eos_id = int(plain.convert_tokens_to_ids("<|im_end|>"))
    pad_id = int(plain.convert_tokens_to_ids("<|endoftext|>"))
    config = tiny_config("qwen2", padded_vocab_size(len(plain)), eos_id, pad_id, sizes=READER_SIZES)
    config.max_position_embeddings = CONTEXT
    tokenizer = student_tokenizer(tokenizer_dir, config)
    model: Any = _any(AutoModelForCausalLM.from_config)(config, dtype=torch.float32, attn_implementation="sdpa")
    model.generation_config = _any(GenerationConfig)(eos_token_id=eos_id, pad_token_id=pad_id, bos_token_id=None)
    world = make_world(lab_world.READER_WORLD_SEED, WORLD_ENTITIES)
    maker = ExampleMaker(tokenizer, world, settings.seed)
    rows = _rows(tokenizer, maker)
    steps = max(1, settings.tokens // (ROW_TOKENS * ROWS_PER_STEP))
    warmup = max(1, steps // 20)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, betas=(0.9, 0.95), weight_decay=0.1)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * (
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))))
    model.train()
    seen = 0
    loss_value = float("nan")
    for step in range(steps):
        maker.follow(*settings.phase_at(step / steps))
        input_ids, labels, weights, positions, attention = _batch([next(rows) for _ in range(ROWS_PER_STEP)], pad_id)
        learned = weights[:, 1:]
        if float(learned.sum()) == 0.0:  # every answer cut off by the row's end: nothing to learn from
            continue
        loss: Any = _learned_loss(model, input_ids, positions, attention, labels[:, 1:], learned)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        seen += int(input_ids.numel())
        value = float(loss.detach())
        loss_value = 0.9 * loss_value + 0.1 * value if step else value
        if report is not None and (step % 25 == 0 or step == steps - 1):
            report({"step": step + 1, "steps": steps, "loss": round(loss_value, 4), "tokens": seen,
                    "elapsed_s": round(time.perf_counter() - started, 1)})
    model.eval()
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    return {"steps": steps, "tokens": seen, "loss": round(loss_value, 4), "seconds": round(time.perf_counter() - started, 1)}


def fingerprint(settings: BuildSettings) -> str:
    """Changes whenever the builder, the world, DocTune's prompts or the settings change."""
    from doctune.core.chat import prompt
    from doctune.core.evaluate import step as evaluation

    digest = hashlib.sha256()
    for part in (BUILDER_VERSION, READER_SIZES, CONTEXT, VOCAB_TARGET, WORLD_ENTITIES, ROW_TOKENS, ROWS_PER_STEP,
                 PACKING_BUFFER, settings, prompt.PLAIN_SYSTEM, prompt.RAG_SYSTEM, evaluation.MC_INSTRUCTION):
        digest.update(repr(part).encode())
    for module in (lab_world, __import__(__name__, fromlist=["_"])):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()[:12]


def ensure_reader(cache_root: str | Path, settings: BuildSettings | None = None,
                  report: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """The reader's model folder under ``cache_root``, built once (minutes on a CPU) and reused after."""
    settings = settings or BuildSettings()
    root = Path(cache_root)
    folder = root / f"lab-reader-{fingerprint(settings)}"
    if (folder / ".complete").exists():
        return folder
    tokenizer_dir = root / f"lab-reader-{fingerprint(settings)}-tokenizer"
    build_tokenizer(tokenizer_dir, settings.tokenizer_examples)
    stats = pretrain(folder, tokenizer_dir, settings, report)
    atomic_write_text(folder / ".complete", json.dumps(stats))
    return folder


def option_scores(model: Any, tokenizer: Any, prompt: str, options: list[str]) -> list[float]:
    """Mean log-probability per token of each option as the answer (DocTune's likelihood scoring)."""
    import torch

    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    scores = []
    for option in options:
        option_ids = tokenizer(option, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids + option_ids])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=ids).logits[0, len(prompt_ids) - 1:-1], dim=-1)
        scores.append(float(logprobs[torch.arange(len(option_ids)), torch.tensor(option_ids)].mean()))
    return scores


def reading_check(model_dir: str | Path, n: int = 60, seed: int = 7) -> dict[str, float]:
    """Held-out multiple choice on new entities, in transformers: ``read`` with the passage among distractors
    (DocTune's RAG prompt), ``guess`` closed book (DocTune's plain prompt). Quick, in process, no index."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(2)
    tokenizer: Any = AutoTokenizer.from_pretrained(model_dir)
    model: Any = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    maker = ExampleMaker(tokenizer, make_world(lab_world.READER_WORLD_SEED, WORLD_ENTITIES), seed)
    rng = random.Random(seed)
    new = make_world(900_000 + seed, n, avoid=maker.world).entities
    right = {"read": 0, "guess": 0}
    for entity in new:
        mc = multiple_choice(entity, rng.choice(KIND_ATTRIBUTES[entity.kind]), rng, "heldout")
        prompts = {"read": maker.rag_prompt(entity, mc.question)[0],
                   "guess": maker.render(maker.messages(mc.question))}
        for name, prompt in prompts.items():
            scores = option_scores(model, tokenizer, prompt, list(mc.options))
            right[name] += int(max(range(4), key=scores.__getitem__) == mc.answer_index)
    return {name: round(count / len(new), 3) for name, count in right.items()}
