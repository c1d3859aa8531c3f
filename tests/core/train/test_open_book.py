"""Open-book training (RAFT): question-answer items also learned with their source among other passages, in the
prompt the chat with retrieval uses, so a tuned student keeps reading."""
from __future__ import annotations

import random

import pytest
import torch
from project_helpers import ingest
from train_helpers import assert_a_cancelled_run_resumes_to_the_same_end, train_until_cancelled, write_items

from doctune.core.chat.prompt import system_message, user_message
from doctune.core.events import CancelToken, Events, RecordingSink
from doctune.core.items import TrainingItem
from doctune.core.rag import Hit
from doctune.core.resources import resource_path
from doctune.core.store import list_chunks
from doctune.core.train import TrainParams, run
from doctune.core.train import data as packing
from doctune.core.train.checkpoints import read_run_config

FAST = {"max_steps": 24, "batch_tokens": 1024, "learning_rate": 3e-3, "checkpoint_every": 8}
QUESTION = "Who first charted the Vellmora Archipelago?"
ANSWER = "Amalie Corveth"


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model("qwen2"))


def _hit(name: str, text: str) -> Hit:
    return Hit(f"chunk-{name}", f"doc-{name}", f"{name}.md", name.title(), None, None, text, 0.0)


ORACLE = _hit("vellmora", "Amalie Corveth first charted the Vellmora Archipelago in 1702, sailing the Sea Lark.")
DISTRACTORS = [_hit("foundry", "The Quintrel Foundry cast its first bell in 1761 for the harbour chapel."),
               _hit("oswin", "Oswin Tarrabeck kept the lighthouse on Garrow Point for forty-one years."),
               _hit("guild", "The Weavers' Guild of Brenmoor met every second Thursday in the old granary.")]


def _item(messages=None) -> TrainingItem:
    return TrainingItem(id="q1", kind="qa", chunk_id=ORACLE.chunk_id, messages=messages or [
        {"role": "user", "content": QUESTION}, {"role": "assistant", "content": ANSWER}])


def _learned_text(tokenizer, example: packing.Example) -> str:
    return tokenizer.decode([token for token, keep in zip(example.input_ids, example.loss_mask) if keep])


def test_an_open_book_item_is_the_chat_with_retrieval_and_its_answer_cites_the_source(tokenizer):
    example = packing.open_book_example(tokenizer, _item(), ORACLE, DISTRACTORS, rng=random.Random(7),
                                        max_seq_len=1024)
    assert example is not None and example.source == "open_book" and example.item_id == "q1#open"
    shown = [ORACLE, *DISTRACTORS]
    random.Random(7).shuffle(shown)  # the order the same draw gives
    number = shown.index(ORACLE) + 1
    prompt = [system_message(rag=True), user_message(QUESTION, shown)]
    expected = tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": f"{ANSWER} [{number}]"}],
                                             tokenize=False)
    assert tokenizer.decode(example.input_ids) == expected
    assert _learned_text(tokenizer, example) == f"{ANSWER} [{number}]<|im_end|>\n"  # only the answer is learned
    again = packing.open_book_example(tokenizer, _item(), ORACLE, DISTRACTORS, rng=random.Random(7), max_seq_len=1024)
    assert again.input_ids == example.input_ids


def _drawn(tokenizer, source_first: float, seeds: range) -> list[packing.Example]:
    return [packing.open_book_example(tokenizer, _item(), ORACLE, DISTRACTORS, rng=random.Random(seed),
                                      max_seq_len=1024, source_first=source_first) for seed in seeds]


def _cited(tokenizer, examples: list[packing.Example]) -> list[str]:
    return [_learned_text(tokenizer, example) for example in examples]


def test_open_book_items_show_their_source_first_in_the_share_asked_as_the_search_ranks_it(tokenizer):
    first = f"{ANSWER} [1]<|im_end|>\n"
    always = _drawn(tokenizer, 1.0, range(40))
    assert _cited(tokenizer, always) == [first] * 40
    orders = {tokenizer.decode(example.input_ids) for example in always}
    assert len(orders) > 3  # the other passages still come in varying orders
    never = _cited(tokenizer, _drawn(tokenizer, 0.0, range(400)))
    half = _cited(tokenizer, _drawn(tokenizer, 0.5, range(400)))
    assert 0.15 < never.count(first) / 400 < 0.35  # one place in four, by chance
    assert 0.52 < half.count(first) / 400 < 0.72  # half first, and a quarter of the rest by chance


def test_distractors_give_way_to_the_length_limit_but_the_source_never_does(tokenizer):
    whole = packing.open_book_example(tokenizer, _item(), ORACLE, DISTRACTORS, rng=random.Random(1), max_seq_len=1024)
    alone = packing.open_book_example(tokenizer, _item(), ORACLE, [], rng=random.Random(1), max_seq_len=1024)
    limit = alone.n_tokens  # room for the source, not for another passage
    cut = packing.open_book_example(tokenizer, _item(), ORACLE, DISTRACTORS, rng=random.Random(1), max_seq_len=limit)
    assert cut is not None and cut.n_tokens <= limit < whole.n_tokens
    text = tokenizer.decode(cut.input_ids)
    assert ORACLE.text in text and not any(hit.text in text for hit in DISTRACTORS)
    assert _learned_text(tokenizer, cut) == f"{ANSWER} [1]<|im_end|>\n"
    assert packing.open_book_example(tokenizer, _item(), ORACLE, DISTRACTORS, rng=random.Random(1),
                                     max_seq_len=alone.n_tokens - 1) is None
    several_turns = _item([{"role": "user", "content": "Q1?"}, {"role": "assistant", "content": "A1"},
                           {"role": "user", "content": "Q2?"}, {"role": "assistant", "content": "A2"}])
    assert packing.open_book_example(tokenizer, several_turns, ORACLE, DISTRACTORS, rng=random.Random(1),
                                     max_seq_len=1024) is None


def _open_book_loss(project, adapter, examples: list[packing.Example]) -> float:
    """Mean loss of the answers (and their citations) of ``examples`` under the student, with ``adapter`` if any."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(project.config.student.model, dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for example in examples:
            batch = packing.collate([example])
            logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0, :-1]
            labels = batch["labels"][0, 1:]
            total += float(torch.nn.functional.cross_entropy(logits, labels, ignore_index=packing.IGNORE,
                                                             reduction="sum"))
            count += int((labels != packing.IGNORE).sum())
    return total / count


def _open_book_examples_of(project, records, tokenizer) -> list[packing.Example]:
    hits = {chunk["id"]: Hit(chunk["id"], chunk["doc_id"], chunk["doc_path"], chunk["doc_title"], None, None,
                             chunk["text"], 0.0) for chunk in list_chunks(project)}
    out = []
    for record in records:
        item = TrainingItem(**record)
        others = [hit for hit in hits.values() if hit.doc_id != hits[item.chunk_id].doc_id][:1]
        out.append(packing.open_book_example(tokenizer, item, hits[item.chunk_id], others, rng=random.Random(0),
                                             max_seq_len=1024))
    return out


def test_open_book_training_teaches_answering_from_the_source_among_others(chunked_qa_project, tmp_path):
    from transformers import AutoTokenizer

    project, items_file, records = chunked_qa_project
    sink = RecordingSink()
    settings = {**FAST, "max_steps": 48, "open_book_fraction": 1.0, "open_book_distractors": 1}
    opened = run(TrainParams(project_dir=project.root, items_file=items_file, train=settings), events=Events(sink),
                 cancel=CancelToken())
    assert any("Open book: 6 of 6" in event.get("message", "") for event in sink.of("log"))
    mix = read_run_config(opened.run_dir).data.mix
    assert mix["open_book"]["sequences"] >= 6 and mix["qa"]["sequences"] >= 6
    closed = run(TrainParams(project_dir=project.root, items_file=items_file, train={**FAST, "max_steps": 48}),
                 events=Events(),
                 cancel=CancelToken())
    assert "open_book" not in read_run_config(closed.run_dir).data.mix

    tokenizer = AutoTokenizer.from_pretrained(project.config.student.model)
    examples = _open_book_examples_of(project, records, tokenizer)
    base = _open_book_loss(project, None, examples)
    after_closed = _open_book_loss(project, closed.run_dir / "adapter", examples)
    after_open = _open_book_loss(project, opened.run_dir / "adapter", examples)
    # measured: base 8.3, closed book 6.8, open book 4.8 nats per answer token (a tiny random model, 48 steps)
    assert after_open < 0.8 * after_closed and after_open < 0.6 * base, (base, after_closed, after_open)


def test_items_whose_source_is_gone_are_not_trained_open_book(chunked_qa_project, tmp_path):
    project, _, records = chunked_qa_project
    orphaned = [{**record, "chunk_id": "no-such-chunk"} for record in records[:2]] + records[2:]
    items_file = write_items(tmp_path / "orphaned.jsonl", orphaned)
    sink = RecordingSink()
    run(TrainParams(project_dir=project.root, items_file=items_file,
                    train={**FAST, "max_steps": 2, "open_book_fraction": 1.0}), events=Events(sink),
        cancel=CancelToken())
    assert any("Open book: 4 of 6" in event.get("message", "") for event in sink.of("log"))
    assert any(event.get("without_open_book") == 2 for event in sink.of("warning"))


def test_an_open_book_run_resumes_to_the_same_end_and_refuses_once_its_passages_changed(chunked_qa_project):
    from doctune.core.train.errors import TrainError

    project, items_file, _ = chunked_qa_project
    settings = {**FAST, "max_steps": 6, "checkpoint_every": 2, "open_book_fraction": 0.5}
    assert_a_cancelled_run_resumes_to_the_same_end(project, items_file, settings)
    before = {p.name for p in project.runs_dir.iterdir() if p.is_dir()}
    train_until_cancelled(project, items_file, 3, settings)
    other = next(p.name for p in project.runs_dir.iterdir() if p.is_dir() and p.name not in before)
    ingest(project, [resource_path("sample/docs") / "04-lanternfall-festival.md"])  # new distractors, same items
    with pytest.raises(TrainError, match="changed since run"):
        run(TrainParams(project_dir=project.root, resume=other), events=Events(), cancel=CancelToken())


def test_a_one_document_project_trains_open_book_with_the_source_alone_and_says_so(student_project, tmp_path):
    ingest(student_project, [resource_path("sample/docs") / "01-vellmora-archipelago.md"])
    chunk = list_chunks(student_project)[0]
    records = [{"id": f"q{i}", "kind": "qa", "recipe": "qa", "chunk_id": chunk["id"],
                "messages": [{"role": "user", "content": f"{QUESTION} ({i})"},
                             {"role": "assistant", "content": ANSWER}]} for i in range(4)]
    items_file = write_items(tmp_path / "items.jsonl", records)
    sink = RecordingSink()
    result = run(TrainParams(project_dir=student_project.root, items_file=items_file,
                             train={**FAST, "max_steps": 2, "open_book_fraction": 1.0, "open_book_distractors": 2}),
                 events=Events(sink), cancel=CancelToken())
    assert any("Open book: 4 of 4" in event.get("message", "") and "up to 0 passage(s)" in event["message"]
               for event in sink.of("log"))
    assert any("show their source alone" in event.get("message", "") for event in sink.of("warning"))
    assert read_run_config(result.run_dir).data.mix["open_book"]["sequences"] >= 4
