"""HTML (and EPUB chapters): visible text only, as headings and paragraphs.

Scripts, styles, forms, navigation, headers, footers, asides and hidden
elements are dropped; block elements (paragraphs, list items, table cells,
headings …) become blocks, inline text inside them is joined.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from bs4 import BeautifulSoup, Comment, NavigableString, Tag

from doctune.core.ingest.blocks import Block, DocumentText, HeadingTracker
from doctune.core.ingest.normalize import clean
from doctune.core.ingest.readers.text import detect_encoding

DROPPED_TAGS = ["script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form",
                "button", "svg", "iframe", "object", "canvas", "select", "menu"]
BLOCK_TAGS = {"p", "div", "section", "article", "main", "li", "ul", "ol", "dl", "dt", "dd", "blockquote", "pre",
              "table", "thead", "tbody", "tfoot", "tr", "figure", "figcaption", "address", "hr",
              "br", "body", "html", "details", "summary", "caption"}
HEADING_LEVELS = {f"h{level}": level for level in range(1, 7)}
BOILERPLATE_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search"}


def parse_html(markup: str | bytes) -> BeautifulSoup:
    soup = BeautifulSoup(markup, "lxml")
    for tag in soup.find_all(DROPPED_TAGS):
        tag.decompose()
    for tag in soup.find_all(_hidden_or_boilerplate):
        tag.decompose()
    for comment in soup.find_all(string=lambda text: isinstance(text, Comment)):
        comment.extract()
    return soup


def _hidden_or_boilerplate(tag: Tag) -> bool:
    if tag.attrs is None:
        return False
    style = str(tag.get("style", "")).replace(" ", "").lower()
    return (
        tag.has_attr("hidden")
        or tag.get("aria-hidden") == "true"
        or "display:none" in style
        or str(tag.get("role", "")).lower() in BOILERPLATE_ROLES
    )


def html_title(soup: BeautifulSoup) -> str | None:
    title = soup.find("title")
    text = clean(title.get_text(" ")).strip() if title else ""
    return text or None


def html_blocks(soup: BeautifulSoup, headings: HeadingTracker | None = None) -> Iterator[Block]:
    """Headings and paragraphs of a parsed page, in document order."""
    headings = headings or HeadingTracker()
    buffer: list[str] = []

    def flush() -> Iterator[Block]:
        text = clean(" ".join(buffer)).strip()
        buffer.clear()
        if text:
            yield Block(" ".join(text.split()), heading_path=headings.path)

    # Depth-first over the tree with a stack of its own (a page of 50,000 nested elements must not exhaust
    # Python's recursion limit); each open element remembers whether it is a block, to end its paragraph.
    root = soup.body or soup
    stack: list[tuple[Iterator, bool]] = [(iter(root.children), False)]
    while stack:
        children, is_block = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            if is_block:
                yield from flush()
        elif isinstance(child, NavigableString):
            buffer.append(str(child))
        elif isinstance(child, Tag) and child.name in HEADING_LEVELS:
            yield from flush()
            title = " ".join(clean(child.get_text(" ")).split())
            if title:
                level = HEADING_LEVELS[child.name]
                yield Block(title, heading_path=headings.enter(level, title), heading=True)
        elif isinstance(child, Tag):
            block = child.name in BLOCK_TAGS
            if block:
                yield from flush()
            stack.append((iter(child.children), block))
    yield from flush()


def open_html(path: Path) -> DocumentText:
    data = path.read_bytes()
    if data.lstrip()[:1] != b"<":
        detect_encoding(data[:65536])  # refuses binary data with a plain reason
    soup = parse_html(data)
    return DocumentText(title=html_title(soup) or path.stem, format="html", blocks=html_blocks(soup))
