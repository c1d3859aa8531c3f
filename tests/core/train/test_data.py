"""Tokenization, loss masks, packing and the mix: no padding, no attention or loss across items."""
from __future__ import annotations

import random

import pytest
import torch

from doctune.core.items import TrainingItem
from doctune.core.train.data import (
    IGNORE,
    Example,
    build_plan,
    collate,
    epoch_mix,
    pack,
    replay_tokens_per_epoch,
    tokenize_document,
    tokenize_items,
    tokenize_qa,
)


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model("qwen2"))


def _qa(item_id="q1", question="Who first charted the Vellmora Archipelago?", answer="Amalie Corveth"):
    return TrainingItem(id=item_id, kind="qa", messages=[{"role": "system", "content": "Be brief."},
                                                         {"role": "user", "content": question},
                                                         {"role": "assistant", "content": answer}])


def _doc(item_id="d1", text="The Quintrel Foundry cast its first bell in 1761."):
    return TrainingItem(id=item_id, kind="document", title="Quintrel Foundry", text=text)


def test_qa_loss_covers_only_the_answer_and_its_end_of_turn(tokenizer):
    example = tokenize_qa(tokenizer, _qa())
    learned = [tok for tok, keep in zip(example.input_ids, example.loss_mask) if keep]
    assert tokenizer.decode(learned) == "Amalie Corveth<|im_end|>\n"
    full = tokenizer.decode(example.input_ids)
    assert full == tokenizer.apply_chat_template([m.model_dump() for m in _qa().messages], tokenize=False)


def test_document_is_title_prefixed_and_fully_learned(tokenizer):
    example = tokenize_document(tokenizer, _doc())
    assert all(example.loss_mask)
    assert tokenizer.decode(example.input_ids).startswith("Quintrel Foundry\n\nThe Quintrel Foundry cast")
    assert example.input_ids[-1] == tokenizer.eos_token_id


def test_packed_rows_restart_positions_and_never_learn_across_items(tokenizer):
    examples = tokenize_items(tokenizer, [_qa("a"), _doc("b"), _qa("c", "What bird is on the flag?", "white gannet")],
                              max_seq_len=512).examples
    batch = collate(examples)
    lengths = [e.n_tokens for e in examples]
    assert batch["input_ids"].shape == (1, sum(lengths))  # no padding at all
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    positions = batch["position_ids"][0].tolist()
    labels = batch["labels"][0].tolist()
    for start, length in zip(starts, lengths):
        assert positions[start:start + length] == list(range(length))
        assert labels[start] == IGNORE  # the first token of an item is never predicted from the previous item
    qa_labels = [tok for tok in labels[starts[0]:starts[1]] if tok != IGNORE]
    assert tokenizer.decode(qa_labels) == "Amalie Corveth<|im_end|>\n"


def test_packed_logits_equal_separate_logits(tokenizer, tiny_model):
    """Restarting positions makes transformers mask attention per item: packing changes nothing."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model("qwen2"), attn_implementation="sdpa").eval()
    examples = tokenize_items(tokenizer, [_qa("a"), _doc("b")], max_seq_len=512).examples
    batch = collate(examples)
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        alone = torch.cat([model(input_ids=torch.tensor([e.input_ids])).logits[0] for e in examples])
        leaky = model(input_ids=batch["input_ids"]).logits[0]  # one long sequence: the second item sees the first
    assert torch.allclose(packed, alone, atol=1e-4)
    assert not torch.allclose(leaky, alone, atol=1e-2)


def test_overlong_items_are_truncated_and_counted(tokenizer):
    long_doc = _doc("long", "word " * 400)
    report = tokenize_items(tokenizer, [long_doc, _qa("short")], max_seq_len=64)
    assert report.truncated == ["long"]
    assert max(e.n_tokens for e in report.examples) == 64


def test_answer_cut_off_entirely_is_dropped_not_trained(tokenizer):
    item = _qa("cut", question="x " * 200, answer="never seen")
    report = tokenize_items(tokenizer, [item], max_seq_len=32)
    assert report.dropped == ["cut"] and not report.examples


def _fake(source, n, count, tokens):
    return [Example(f"{source}{i}", source, list(range(tokens)), [True] * tokens) for i in range(count)][:n or count]


def test_mix_balances_qa_and_documents_by_tokens_and_adds_replay_fraction():
    qa = _fake("qa", 0, 40, 20)  # 800 tokens
    docs = _fake("document", 0, 4, 500)  # 2000 tokens
    replay = _fake("replay", 0, 30, 30)
    mix = epoch_mix(qa, docs, replay, qa_to_document_ratio=1.0, replay_fraction=0.1, rng=random.Random(0))
    tokens = {s: sum(e.n_tokens for e in mix if e.source == s) for s in ("qa", "document", "replay")}
    assert tokens["document"] == 2000
    assert abs(tokens["qa"] - 2000) <= 20  # QA repeated up to the documents' tokens
    assert tokens["replay"] / sum(tokens.values()) == pytest.approx(0.1, abs=0.01)


@pytest.mark.parametrize("open_book_count", [0, 12])
def test_replay_generated_is_what_an_epoch_with_open_book_examples_takes(open_book_count):
    """Replay answers are generated before the plan: as many tokens as one epoch's replay share, open-book
    examples (outside the QA:document ratio) included; too few would leave replay below its fraction."""
    qa, docs = _fake("qa", 0, 40, 20), _fake("document", 0, 4, 500)
    open_book = _fake("open_book", 0, open_book_count, 60)
    wanted = replay_tokens_per_epoch(qa, docs, qa_to_document_ratio=1.0, replay_fraction=0.2, open_book=open_book)
    replay = _fake("replay", 0, 200, 10)  # more than enough
    mix = epoch_mix(qa, docs, replay, qa_to_document_ratio=1.0, replay_fraction=0.2, rng=random.Random(0),
                    open_book=open_book)
    taken = sum(e.n_tokens for e in mix if e.source == "replay")
    assert abs(taken - wanted) <= 10  # one replay answer
    assert sum(e.source == "open_book" for e in mix) == open_book_count
    assert taken / sum(e.n_tokens for e in mix) == pytest.approx(0.2, abs=0.01)
    if open_book_count:
        without = replay_tokens_per_epoch(qa, docs, qa_to_document_ratio=1.0, replay_fraction=0.2)
        assert wanted - without == round(0.2 / 0.8 * open_book_count * 60)


def test_plan_is_deterministic_and_steps_split_between_processes():
    qa = _fake("qa", 0, 40, 20)
    one = build_plan(qa, [], [], qa_to_document_ratio=1, replay_fraction=0, batch_tokens=100, epochs=2,
                     max_steps=0, seed=3)
    again = build_plan(qa, [], [], qa_to_document_ratio=1, replay_fraction=0, batch_tokens=100, epochs=2,
                       max_steps=0, seed=3)
    assert one.fingerprint() == again.fingerprint() and one.total_steps == 16
    assert all(sum(e.n_tokens for e in row) <= 100 for row in one.rows)
    two = build_plan(qa, [], [], qa_to_document_ratio=1, replay_fraction=0, batch_tokens=100, epochs=0,
                     max_steps=5, seed=3, world_size=2)
    assert two.total_steps == 5 and len(two.rows_for_step(4)) == 2


def test_pack_keeps_order_and_budget():
    rows = pack(_fake("qa", 0, 5, 40), batch_tokens=100)
    assert [len(r) for r in rows] == [2, 2, 1]


def test_multi_turn_answers_are_found_when_the_template_renders_earlier_turns_differently(tokenizer):
    """Like Qwen3 (think block only on the last answer): rendering is then not prefix-stable."""
    from copy import deepcopy

    odd = deepcopy(tokenizer)
    odd.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n"
        "{% if m.role == 'assistant' and loop.last %}[final] {% endif %}{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    item = TrainingItem(id="multi", kind="qa", messages=[
        {"role": "user", "content": "First question?"}, {"role": "assistant", "content": "Amalie Corveth"},
        {"role": "user", "content": "Second question?"}, {"role": "assistant", "content": "white gannet"}])
    example = tokenize_qa(odd, item)
    learned = odd.decode([tok for tok, keep in zip(example.input_ids, example.loss_mask) if keep])
    assert learned == "Amalie Corveth<|im_end|>[final] white gannet<|im_end|>\n"


# ----- one form of a question for training, chat and evaluation; a plan that ignores arrival order ---------------

def test_qa_is_trained_in_the_exact_form_chat_and_evaluation_ask_it(tokenizer):
    from doctune.core.chat.prompt import Counter, assemble

    question, answer = "Who first charted the Vellmora Archipelago?", "Amalie Corveth"
    item = TrainingItem(id="q", kind="qa", messages=[{"role": "user", "content": question},
                                                     {"role": "assistant", "content": answer}])
    example = tokenize_qa(tokenizer, item)

    def render(messages):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    counter = Counter(count=lambda messages: len(tokenizer(render(messages))["input_ids"]),
                      truncate=lambda text, n: text, tokens=lambda text: len(tokenizer(text)["input_ids"]))
    asked = render(assemble(question, budget=4096, counter=counter).messages)  # what chat and evaluation send
    first_learned = example.loss_mask.index(True)
    assert tokenizer.decode(example.input_ids[:first_learned]) == asked
    assert tokenizer.decode(example.input_ids) == asked + answer + "<|im_end|>\n"
    replay = tokenize_qa(tokenizer, item, "replay")  # the base student's own answers stay as it gave them
    assert tokenizer.decode(replay.input_ids).count("Answer the question concisely") == 0


def test_the_plan_depends_on_the_items_not_on_the_order_synthesis_wrote_them():
    from doctune.core.train.data import items_fingerprint

    qa, docs = _fake("qa", 0, 30, 20), _fake("document", 0, 5, 90)
    settings = dict(qa_to_document_ratio=1, replay_fraction=0, batch_tokens=150, epochs=2, max_steps=0, seed=3)
    shuffled_qa, shuffled_docs = qa[:], docs[:]
    random.Random(5).shuffle(shuffled_qa)
    random.Random(6).shuffle(shuffled_docs)
    assert build_plan(qa, docs, [], **settings).fingerprint() == \
        build_plan(shuffled_qa, shuffled_docs, [], **settings).fingerprint()

    items = [_doc(f"d{i}", text=f"The Quintrel Foundry cast bell number {i}.") for i in range(5)]
    timed = [item.model_copy(update={"meta": {"seconds": 0.1 * i}}) for i, item in enumerate(items)]
    assert items_fingerprint(items) == items_fingerprint(list(reversed(timed)))
    assert items_fingerprint(items) != items_fingerprint(items[:4])
