"""What readers produce: a document's text as a stream of blocks, and the failures they report."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from doctune.core.errors import UserError


@dataclass(frozen=True)
class Block:
    """One paragraph-like unit of a document's normalised text.

    ``heading`` marks a heading line; ``heading_path`` lists the headings that
    enclose the block (a heading's own path ends with itself). ``page`` is
    1-based, or None for formats without pages.
    """

    text: str
    page: int | None = None
    heading_path: tuple[str, ...] = ()
    heading: bool = False


@dataclass
class DocumentText:
    """A readable document: its title, page count (None without pages) and lazily read blocks."""

    title: str
    format: str
    blocks: Iterator[Block]
    pages: int | None = None


class ReadFailure(UserError):
    """A file that cannot be ingested; ``reason`` and ``hint`` are shown to the user."""

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason, hint)
        self.reason = reason


class HeadingTracker:
    """Keeps the current heading path as headings of various levels arrive."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []

    def enter(self, level: int, title: str) -> tuple[str, ...]:
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, title))
        return self.path

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(title for _, title in self._stack)
