"""Text clean-up shared by the readers.

- ``clean``: Unicode NFC, one kind of line end, odd spaces (no-break, thin …)
  become plain spaces, invisible characters (zero-width, soft hyphen, BOM) and
  control characters go, runs of spaces collapse, lines are trimmed.
- ``dehyphenate``: a word broken at a line end in a PDF (``exam-\\nple``) is
  joined again when the next line starts in lower case.
- ``remove_repeated_edges``: running headers and footers (lines at the top or
  bottom of most pages, page numbers ignored) are dropped.
- ``pdf_paragraphs``: a PDF page's lines grouped into paragraphs (blank line,
  or a short line ending a sentence, ends a paragraph).
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter

_ODD_SPACES = "\u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u202f\u205f\u3000\t\f\v"
_INVISIBLE = "\u00ad\u200b\u200c\u200d\u2060\ufeff"
_CONTROL = "".join(chr(code) for code in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)])
_CLEAN_TABLE = str.maketrans({**dict.fromkeys(_INVISIBLE + _CONTROL), **dict.fromkeys(_ODD_SPACES, " ")})
_SPACE_RUNS = re.compile(r" {2,}")
_LINE_EDGES = re.compile(r" *\n *")
_BLANK_LINES = re.compile(r"\n\s*\n")
_HYPHEN_BREAK = re.compile(r"(?<=[^\W\d_])-\n(?=[^\W\d_])")
_SENTENCE_END = re.compile(r"[.!?:;\"'\u201d\u2019)\]]$")
_DIGITS = re.compile(r"\d+")


def clean(text: str) -> str:
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = text.translate(_CLEAN_TABLE)
    return _LINE_EDGES.sub("\n", _SPACE_RUNS.sub(" ", text)).strip(" ")


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs separated by blank lines, trimmed, empty ones dropped."""
    return [part.strip() for part in _BLANK_LINES.split(text) if part.strip()]


def dehyphenate(text: str) -> str:
    def join(match: re.Match) -> str:
        following = text[match.end()]
        return "" if following.islower() else match.group(0)

    return _HYPHEN_BREAK.sub(join, text)


def _edge_key(line: str) -> str:
    return _DIGITS.sub("#", line.strip().lower())


def _edge_run(lines: list[str], repeated: set[str], depth: int) -> set[int]:
    """Indexes of repeated lines met first from the top and from the bottom (at most ``depth`` each, contiguous)."""
    filled = [index for index, line in enumerate(lines) if line.strip()]
    drop: set[int] = set()
    for order in (filled, filled[::-1]):
        for index in order[:depth]:
            if _edge_key(lines[index]) not in repeated:
                break
            drop.add(index)
    return drop


def _edge_keys(lines: list[str], depth: int) -> set[str]:
    filled = [line for line in lines if line.strip()]
    return {_edge_key(line) for line in filled[:depth] + filled[-depth:]}


def remove_repeated_edges(pages: list[str], depth: int = 2) -> list[str]:
    """Drop lines that sit at the top or bottom of most pages (running headers, footers, page numbers).

    A line counts as repeated when, with its digits ignored, it is among the
    first or last ``depth`` lines of at least 60% of the pages (and of 3 pages
    or more). Only runs of repeated lines touching a page's edge are dropped,
    so body text is never cut from the middle, and short documents are left alone.
    """
    if len(pages) < 3:
        return pages
    page_lines = [page.split("\n") for page in pages]
    seen: Counter[str] = Counter()
    for lines in page_lines:
        seen.update(_edge_keys(lines, depth))
    needed = max(3, math.ceil(0.6 * len(pages)))
    repeated = {key for key, count in seen.items() if count >= needed and key}
    if not repeated:
        return pages
    cleaned = []
    for lines in page_lines:
        drop = _edge_run(lines, repeated, depth)
        cleaned.append("\n".join(line for index, line in enumerate(lines) if index not in drop))
    return cleaned


def pdf_paragraphs(page_text: str) -> list[str]:
    """Group a PDF page's lines into paragraphs, joining broken words and lines."""
    paragraphs: list[str] = []
    for part in split_paragraphs(dehyphenate(page_text)):
        lines = [line.strip() for line in part.split("\n") if line.strip()]
        longest = max(len(line) for line in lines)
        current: list[str] = []
        for line in lines:
            current.append(line)
            if _SENTENCE_END.search(line) and len(line) < 0.75 * longest:
                paragraphs.append(" ".join(current))
                current = []
        if current:
            paragraphs.append(" ".join(current))
    return paragraphs
