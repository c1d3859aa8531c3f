"""The reader student's builder: examples in DocTune's own prompts, a folder DocTune takes as a student.

Only the machinery is tested here (a few training steps); whether the built reader reads and cannot guess is
measured by bench/knowledge.py, on the full build.
"""

import pytest

from doctune.core.chat.prompt import PLAIN_SYSTEM, RAG_SYSTEM
from doctune.core.evaluate.step import MC_INSTRUCTION
from doctune.core.lab import reader
from doctune.core.lab.world import make_world

TINY_BUILD = reader.BuildSettings(tokens=2 * reader.ROW_TOKENS * reader.ROWS_PER_STEP, tokenizer_examples=150)


@pytest.fixture(scope="module")
def small_reader(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab-cache")
    return reader.ensure_reader(root, TINY_BUILD)


@pytest.fixture(scope="module")
def maker(small_reader):
    from transformers import AutoTokenizer

    world = make_world(reader.lab_world.READER_WORLD_SEED, reader.WORLD_ENTITIES)
    return reader.ExampleMaker(AutoTokenizer.from_pretrained(small_reader), world, seed=3)


def test_reading_examples_are_doctune_rag_prompts_with_the_answer_and_its_source_number(maker):
    for _ in range(20):
        example = maker.make("read")
        assert example.prompt.startswith(f"<|im_start|>system\n{RAG_SYSTEM}<|im_end|>\n<|im_start|>user\nSources:\n\n[1] ")
        assert example.prompt.endswith("<|im_start|>assistant\n")
        value, number = example.answer.rsplit(" ", 1)
        assert f"[{number[1:-1]}] " in example.prompt and value in example.prompt
        assert maker.counter.count([{"role": "user", "content": example.prompt}]) <= reader.PROMPT_TOKENS + 40


def test_every_turn_of_a_reading_example_cites_the_source_that_names_the_entity_asked_about(maker):
    import re

    cited_other = 0
    for _ in range(40):
        example = maker.make("read")
        blocks = dict(re.findall(r"\[(\d+)\] ([^\n]+)\n(?:.*?)(?=\n\n\[\d+\] |\n\nQuestion: )",
                                 example.prompt, flags=re.S))
        sources = {number: example.prompt.split(f"[{number}] {name}\n", 1)[1].split("\n\n[", 1)[0]
                   for number, name in blocks.items()}
        first_question = example.prompt.rsplit("Question: ", 1)[1]
        for asked, answer in ((first_question, example.answer), *example.turns):
            value, number = re.fullmatch(r"(.+) \[(\d+)\]", answer).groups()
            assert blocks[number] in asked and value in sources[number]
        cited_other += any(not turn[1].endswith(example.answer[-3:]) for turn in example.turns)
    assert cited_other >= 5  # later turns also ask about the distractors: the name, not the order, picks the passage


def test_recall_and_multiple_choice_examples_use_doctune_plain_prompt_and_mc_instruction(maker):
    recalls = [maker.make("recall") for _ in range(30)]
    assert any(PLAIN_SYSTEM in r.prompt for r in recalls) and any("<|im_start|>system" not in r.prompt for r in recalls)
    known_names = {e.name for e in maker.known}
    assert all(any(name in r.prompt for name in known_names) for r in recalls)
    mc = maker.make("read_mc")
    assert MC_INSTRUCTION in mc.prompt and mc.answer in "ABCD"


def test_built_reader_is_a_local_student_folder_with_chat_template(small_reader):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from doctune.core.train.student import check_student_folder

    check_student_folder(small_reader)
    tokenizer = AutoTokenizer.from_pretrained(small_reader)
    model = AutoModelForCausalLM.from_pretrained(small_reader)
    assert model.config.model_type == "qwen2" and model.config.max_position_embeddings == reader.CONTEXT
    assert tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                         add_generation_prompt=True) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert (small_reader / ".complete").exists()
    assert reader.ensure_reader(small_reader.parent, TINY_BUILD) == small_reader
    scores = reader.option_scores(model, tokenizer, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", ["a", "b c"])
    assert len(scores) == 2 and all(s < 0 for s in scores)


def test_a_value_is_the_same_tokens_bare_as_in_a_sentence(small_reader):
    """DocTune scores an option tokenized bare; the passage has it after a space: the reader copies tokens."""
    from transformers import AutoTokenizer

    from doctune.core.lab.world import ATTRIBUTES

    tokenizer = AutoTokenizer.from_pretrained(small_reader)
    space = tokenizer(" ", add_special_tokens=False)["input_ids"]
    for value in ("Velmora", "woodcarving", "1953", "Tarrow Mills", "a copper bridge", ATTRIBUTES["river"].values[0]):
        bare = tokenizer(value, add_special_tokens=False)["input_ids"]
        assert tokenizer(f" {value}", add_special_tokens=False)["input_ids"] == space + bare


def test_the_reader_learns_text_in_the_tokens_doctune_and_llama_cpp_will_give_it(small_reader):
    """transformers loads a Qwen2 student's tokenizer with Qwen2's split rules (every digit apart) whatever its
    tokenizer.json says: a reader pretrained on other splits was asked in DocTune in tokens it had barely seen."""
    from transformers import AutoConfig, AutoTokenizer

    from doctune.core.export.vocab import detect_pre_tokenizer

    text = "Dradorton was founded in 1962, Velmora in 1643.\n\nIts 11,000 people live by the Merrow: (a bridge) [2]"
    tokenizer_dir = small_reader.parent / f"{small_reader.name}-tokenizer"
    doctune_tokenizer = AutoTokenizer.from_pretrained(small_reader)
    as_doctune_loads_it = doctune_tokenizer(text)["input_ids"]
    assert reader.student_tokenizer(tokenizer_dir, AutoConfig.from_pretrained(small_reader))(text)["input_ids"] \
        == as_doctune_loads_it
    assert AutoTokenizer.from_pretrained(tokenizer_dir)(text)["input_ids"] == as_doctune_loads_it  # its own rules too
    assert detect_pre_tokenizer(doctune_tokenizer.backend_tokenizer) == "qwen2"  # what the export tells llama.cpp


def test_the_curriculum_starts_with_one_sentence_and_ends_with_doctune_prompts(maker):
    settings = reader.BuildSettings()
    first, into = settings.phase_at(0.0)
    last, _ = settings.phase_at(0.999)
    assert first.mix == (("passage", 1.0),) and first.facts == (1, 1) and into == 0.0
    assert {kind for kind, _ in last.mix} == {"read", "read_mc"} and last is settings.curriculum[-1]  # ends reading
    assert "recall" in {kind for kind, _ in settings.curriculum[-2].mix}
    assert abs(sum(phase.share for phase in settings.curriculum) - 1.0) < 1e-9

    maker.follow(first, 0.0)
    for _ in range(10):
        example = maker.draw()
        assert example.kind == "passage" and example.answer in example.prompt
        assert "<|im_start|>system" not in example.prompt and example.prompt.count(". ") == 0  # one sentence
    growing = settings.curriculum[1]
    maker.follow(growing, 1.0)
    assert maker.most_facts == 7 and max(maker.draw().prompt.count(". ") for _ in range(30)) >= 3
    maker.follow(settings.curriculum[3], 0.0)
    assert all(maker.make("read").prompt.count("\n[") == 1 for _ in range(10))  # the target alone at first
    maker.follow(settings.curriculum[3], 0.6)
    reads = [maker.make("read") for _ in range(30)]
    assert max(r.prompt.count("\n[") for r in reads) <= 4  # the target and at most three distractors at 60%


def test_rows_are_packed_nearly_full_of_whole_examples_with_their_answers(maker):
    maker.follow(reader.BuildSettings().curriculum[-1], 1.0)  # reading prompts of a few hundred tokens each
    rows = reader._rows(maker.tokenizer, maker)
    packed = [next(rows) for _ in range(40)]
    for ids, mask, positions in packed:
        assert len(ids) == len(mask) == len(positions) <= reader.ROW_TOKENS
        starts = [i for i, p in enumerate(positions) if p == 0]
        ends = starts[1:] + [len(ids)]
        assert starts[0] == 0 and all(positions[i:j] == list(range(j - i)) for i, j in zip(starts, ends))
        assert all(any(mask[i:j]) for i, j in zip(starts, ends))  # every example packed still has an answer to learn
    fill = sum(len(ids) for ids, _, _ in packed) / (reader.ROW_TOKENS * len(packed))
    assert fill > 0.9  # taken one at a time in order, such rows were 79-88% full
