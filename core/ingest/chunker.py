"""Token-aware chunking of a block stream, in one pass and bounded memory.

A document's normalised text is its blocks joined by a blank line (``"\\n\\n"``);
every chunk is an exact slice of that text (``char_start``/``char_end``).

How chunks are cut:

- Blocks (paragraphs, headings, table rows …) are packed whole until the next
  one would exceed ``chunk_tokens``.
- A block too long to share a chunk with the overlap (more than
  ``chunk_tokens - overlap`` tokens) is first cut into pieces at token
  boundaries, preferring a sentence end.
- A heading starts a new chunk once the current one holds at least a quarter
  of ``chunk_tokens``; a heading is never left as the last line of a chunk.
- Consecutive chunks share about ``overlap`` tokens: whole trailing blocks when
  they fit, else the tail of the last block from a token (preferably sentence)
  boundary. No overlap is carried across a heading.
- When a heading (which must not end a chunk) and the block after it do not fit
  together, the block is cut so that its first part fills the heading's chunk;
  a heading too long to share a chunk with any text becomes a chunk of its own.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from doctune.core.ingest.blocks import Block
from doctune.core.ingest.tokens import TokenCounter

BLOCK_SEPARATOR = "\n\n"
_COUNT_BATCH_BLOCKS = 256
_COUNT_BATCH_CHARS = 1 << 20
_SENTENCE_ENDS = ".!?"
_WHITESPACE = re.compile(r"\s+")
_TAIL_CHARS_PER_TOKEN = 8  # generous: English WordPiece averages about 4-5 characters per token


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    text: str
    char_start: int
    char_end: int
    page_start: int | None
    page_end: int | None
    heading_path: tuple[str, ...]
    n_tokens: int


@dataclass(frozen=True)
class _Unit:
    """A block or a piece of one, placed in the document text."""

    text: str
    start: int
    gap: str  # document text between the previous unit and this one
    n_tokens: int
    page: int | None
    heading_path: tuple[str, ...]
    heading: bool
    carried: bool = False  # repeated from the previous chunk as overlap

    @property
    def end(self) -> int:
        return self.start + len(self.text)


class Chunker:
    def __init__(self, counter: TokenCounter, chunk_tokens: int = 512, overlap: int = 64) -> None:
        if overlap >= chunk_tokens // 2:
            raise ValueError(f"overlap ({overlap}) must be less than half of chunk_tokens ({chunk_tokens})")
        self.counter = counter
        self.chunk_tokens = chunk_tokens
        self.overlap = overlap
        self.max_unit_tokens = chunk_tokens - overlap
        self.min_fill_at_heading = chunk_tokens // 4

    # ----- public ------------------------------------------------------------------
    def chunks(self, blocks: Iterable[Block]) -> Iterator[Chunk]:
        current: list[_Unit] = []
        ordinal = 0
        for block_unit in self._units(blocks):
            unit: _Unit | None = block_unit
            while unit is not None:
                flush, carry = self._place(current, unit)
                if flush:
                    yield self._make_chunk(flush, ordinal)
                    ordinal += 1
                unit, rest = self._split_to_fit(carry, unit)
                if unit is None:  # the headings cannot share a chunk with any text
                    yield self._make_chunk(carry, ordinal)
                    ordinal += 1
                    carry, unit = [], rest
                    rest = None
                current[:] = carry + [unit]
                unit = rest
        if any(not unit.carried for unit in current):
            yield self._make_chunk(current, ordinal)

    # ----- packing -----------------------------------------------------------------
    def _place(self, current: list[_Unit], unit: _Unit) -> tuple[list[_Unit], list[_Unit]]:
        """Decide what to emit before ``unit`` joins; returns (units to emit, units to keep)."""
        fresh = [u for u in current if not u.carried]
        fresh_tokens = sum(u.n_tokens for u in fresh)
        if unit.heading and fresh_tokens >= self.min_fill_at_heading:
            return list(current), []
        if unit.heading and not fresh:
            return [], []
        if sum(u.n_tokens for u in current) + unit.n_tokens <= self.chunk_tokens:
            return [], list(current)
        body, trailing_headings = _split_trailing_headings(current)
        if not any(not u.carried for u in body):
            return [], self._fit(current, unit)
        if trailing_headings:
            return body, trailing_headings
        return list(current), self._fit(self._overlap_of(current), unit)

    def _split_to_fit(self, kept: list[_Unit], unit: _Unit) -> tuple[_Unit | None, _Unit | None]:
        """(part of ``unit`` that fits beside ``kept``, the rest or None).

        ``_place`` only keeps more than fits when the kept units are fresh headings;
        the unit is then cut so the headings' chunk stays within ``chunk_tokens``.
        The first element is None when not even one token fits.
        """
        budget = self.chunk_tokens - sum(u.n_tokens for u in kept)
        if unit.n_tokens <= budget:
            return unit, None
        spans = self.counter.token_spans(unit.text)
        last = min(math.floor(budget / self.counter.tokens_per_span), len(spans) - 1)
        if last < 1:
            return None, unit
        last = _natural_cut(unit.text, spans, last * 3 // 5, last)
        head_end, rest_start = spans[last - 1][1], spans[last][0]
        head = replace(unit, text=unit.text[:head_end],
                       n_tokens=math.ceil(last * self.counter.tokens_per_span))
        rest = replace(unit, text=unit.text[rest_start:], start=unit.start + rest_start,
                       gap=unit.text[head_end:rest_start],
                       n_tokens=math.ceil((len(spans) - last) * self.counter.tokens_per_span))
        return head, rest

    def _fit(self, kept: list[_Unit], unit: _Unit) -> list[_Unit]:
        """Drop overlap (never fresh text) from the front until ``unit`` fits beside the rest."""
        kept = list(kept)
        while kept and kept[0].carried and sum(u.n_tokens for u in kept) + unit.n_tokens > self.chunk_tokens:
            kept.pop(0)
        return kept

    def _overlap_of(self, emitted: list[_Unit]) -> list[_Unit]:
        if self.overlap == 0:
            return []
        whole: list[_Unit] = []
        total = 0
        for unit in reversed(emitted):
            if total + unit.n_tokens > self.overlap:
                break
            whole.insert(0, replace(unit, carried=True))
            total += unit.n_tokens
        if whole:
            return whole
        return [self._tail(emitted[-1])]

    def _tail(self, unit: _Unit) -> _Unit:
        """The last ~``overlap`` tokens of a unit, starting at a sentence, else a word, when one begins there."""
        keep = max(1, math.floor(self.overlap / self.counter.tokens_per_span))
        window = _whitespace_after(unit.text, len(unit.text) - keep * _TAIL_CHARS_PER_TOKEN)
        spans = self.counter.token_spans(unit.text[window:])
        if len(spans) > keep:  # the window holds enough tokens: read the tail only
            spans = [(start + window, end + window) for start, end in spans]
        else:
            spans = self.counter.token_spans(unit.text)
        latest = len(spans) - max(1, keep * 2 // 5)
        cut = _natural_start(unit.text, spans, max(len(spans) - keep, 1), latest)
        offset = spans[cut][0] if cut < len(spans) else len(unit.text)
        n_tokens = math.ceil((len(spans) - cut) * self.counter.tokens_per_span)
        return replace(unit, text=unit.text[offset:], start=unit.start + offset, n_tokens=n_tokens, carried=True)

    def _make_chunk(self, units: list[_Unit], ordinal: int) -> Chunk:
        text = units[0].text + "".join(unit.gap + unit.text for unit in units[1:])
        pages = [unit.page for unit in units if unit.page is not None]
        first_fresh = next((unit for unit in units if not unit.carried), units[0])
        return Chunk(
            ordinal=ordinal,
            text=text,
            char_start=units[0].start,
            char_end=units[-1].end,
            page_start=min(pages) if pages else None,
            page_end=max(pages) if pages else None,
            heading_path=first_fresh.heading_path,
            n_tokens=sum(unit.n_tokens for unit in units),
        )

    # ----- blocks → units ----------------------------------------------------------
    def _units(self, blocks: Iterable[Block]) -> Iterator[_Unit]:
        offset = 0
        for batch in _batches(blocks):
            for block, n_tokens in zip(batch, self.counter.count_many([block.text for block in batch])):
                yield from self._block_units(block, offset, n_tokens)
                offset += len(block.text) + len(BLOCK_SEPARATOR)

    def _block_units(self, block: Block, offset: int, n_tokens: int) -> Iterator[_Unit]:
        base = dict(page=block.page, heading_path=block.heading_path, heading=block.heading)
        if n_tokens <= self.max_unit_tokens:
            yield _Unit(text=block.text, start=offset, gap=BLOCK_SEPARATOR, n_tokens=n_tokens, **base)
            return
        previous_end = None
        for start, end, piece_tokens in self._pieces(block.text):
            gap = BLOCK_SEPARATOR if previous_end is None else block.text[previous_end:start]
            yield _Unit(text=block.text[start:end], start=offset + start, gap=gap, n_tokens=piece_tokens, **base)
            previous_end = end

    def _pieces(self, text: str) -> Iterator[tuple[int, int, int]]:
        """(start, end, tokens) of consecutive pieces of at most ``max_unit_tokens`` tokens."""
        spans = self.counter.token_spans(text)
        per_piece = max(1, math.floor(self.max_unit_tokens / self.counter.tokens_per_span))
        first = 0
        while first < len(spans):
            last = min(first + per_piece, len(spans))
            if last < len(spans):
                last = _natural_cut(text, spans, first + per_piece * 3 // 5, last)
            start = 0 if first == 0 else spans[first][0]
            end = len(text) if last == len(spans) else spans[last - 1][1]
            yield start, end, math.ceil((last - first) * self.counter.tokens_per_span)
            first = last


def _whitespace_after(text: str, position: int) -> int:
    """Start of the first word at or after ``position`` (0 if position <= 0): tokens never cross whitespace."""
    if position <= 0:
        return 0
    match = _WHITESPACE.search(text, position)
    return match.end() if match else len(text)


def _natural_cut(text: str, spans: list[tuple[int, int]], earliest: int, latest: int) -> int:
    """Where to cut ``spans`` in [earliest, latest]: the latest sentence end, else word start, else ``latest``.

    ``latest`` must be below ``len(spans)`` (a cut always leaves a span after it).
    """
    return _first_boundary(text, spans, range(latest, max(earliest, 1) - 1, -1), default=latest)


def _natural_start(text: str, spans: list[tuple[int, int]], earliest: int, latest: int) -> int:
    """The earliest span index in [earliest, latest) that starts a sentence, else a word, else ``earliest``."""
    return _first_boundary(text, spans, range(earliest, latest), default=earliest)


def _first_boundary(text: str, spans: list[tuple[int, int]], candidates: range, default: int) -> int:
    """The first span index in ``candidates`` that follows a sentence end, else the first that starts a word
    (whitespace before it), else ``default``. Every candidate is at least 1 and below ``len(spans)``."""
    for index in candidates:
        if text[spans[index - 1][1] - 1] in _SENTENCE_ENDS:
            return index
    for index in candidates:
        if spans[index][0] > spans[index - 1][1]:
            return index
    return default


def _split_trailing_headings(units: list[_Unit]) -> tuple[list[_Unit], list[_Unit]]:
    split = len(units)
    while split > 0 and units[split - 1].heading and not units[split - 1].carried:
        split -= 1
    return units[:split], units[split:]


def _batches(blocks: Iterable[Block]) -> Iterator[list[Block]]:
    batch: list[Block] = []
    chars = 0
    for block in blocks:
        if not block.text:
            continue
        batch.append(block)
        chars += len(block.text)
        if len(batch) >= _COUNT_BATCH_BLOCKS or chars >= _COUNT_BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch
