"""Plain text and Markdown, read as a stream (a 100 MB file never sits in memory whole).

Encoding: a byte-order mark decides (UTF-8, UTF-16, UTF-32); otherwise the
first 64 KB must decode as UTF-8, else CP1252, else Latin-1 (which decodes
anything). Text with NUL bytes or many control characters is refused as
binary data.
"""
from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from pathlib import Path

from doctune.core.ingest.blocks import Block, DocumentText, HeadingTracker, ReadFailure
from doctune.core.ingest.normalize import clean

SAMPLE_BYTES = 64 * 1024
READ_CHARS = 1 << 20
MAX_PARAGRAPH_CHARS = 32 * 1024
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")
_ATX_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def detect_encoding(sample: bytes) -> str:
    for bom, encoding in _BOMS:
        if sample.startswith(bom):
            return encoding
    if b"\x00" in sample:
        raise _binary()
    for encoding in ("utf-8", "cp1252"):
        try:
            codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
            return encoding
        except UnicodeDecodeError:
            continue
    return "latin-1"


def _binary() -> ReadFailure:
    return ReadFailure(
        "the file holds binary data, not text",
        "check that it is really a text file; if it is a document in another format, give it the right extension",
    )


def _check_text(sample_text: str) -> None:
    if sample_text and len(_CONTROL.findall(sample_text)) > max(2, len(sample_text) // 100):
        raise _binary()


def _raw_paragraphs(path: Path, encoding: str) -> Iterator[str]:
    """Paragraphs (split at blank lines) read 1 M characters at a time; overlong ones are cut at a line or space."""
    with open(path, encoding=encoding, errors="replace", newline=None) as handle:
        pending = ""
        while True:
            piece = handle.read(READ_CHARS)
            if not piece:
                break
            pending += piece
            parts = _BLANK_LINE.split(pending)
            pending = parts.pop()
            yield from parts
            while len(pending) > MAX_PARAGRAPH_CHARS:
                cut = _soft_cut(pending, MAX_PARAGRAPH_CHARS)
                yield pending[:cut]
                pending = pending[cut:]
        if pending:
            yield pending


def _soft_cut(text: str, limit: int) -> int:
    """Where to cut an overlong paragraph: the last line end, else the last space, before ``limit``."""
    for mark in ("\n", " "):
        position = text.rfind(mark, limit // 2, limit)
        if position > 0:
            return position + 1
    return limit


def _text_blocks(paragraphs: Iterator[str]) -> Iterator[Block]:
    for paragraph in paragraphs:
        text = clean(paragraph).strip()
        if text:
            yield Block(text)


def _markdown_blocks(paragraphs: Iterator[str]) -> Iterator[Block]:
    """Blocks of a Markdown file: ATX headings (outside code fences) become headings."""
    headings = HeadingTracker()
    in_fence = False
    for paragraph in paragraphs:
        body: list[str] = []
        for line in clean(paragraph).split("\n"):
            if _FENCE.match(line):
                in_fence = not in_fence
            match = None if in_fence else _ATX_HEADING.match(line)
            if match:
                if body:
                    yield Block("\n".join(body).strip(), heading_path=headings.path)
                    body = []
                title = match.group(2)
                yield Block(title, heading_path=headings.enter(len(match.group(1)), title), heading=True)
            else:
                body.append(line)
        text = "\n".join(body).strip()
        if text:
            yield Block(text, heading_path=headings.path)


def markdown_title(sample_text: str) -> str | None:
    """The first level-1 heading near the start of a Markdown file, outside code fences."""
    in_fence = False
    for line in sample_text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _ATX_HEADING.match(line)
        if match and len(match.group(1)) == 1:
            return clean(match.group(2)).strip() or None
    return None


def open_text(path: Path, markdown: bool = False) -> DocumentText:
    with open(path, "rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    encoding = detect_encoding(sample)
    sample_text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(sample)
    _check_text(sample_text)
    paragraphs = _raw_paragraphs(path, encoding)
    blocks = _markdown_blocks(paragraphs) if markdown else _text_blocks(paragraphs)
    title = (markdown_title(sample_text) if markdown else None) or path.stem
    return DocumentText(title=title, format="markdown" if markdown else "text", blocks=blocks)
