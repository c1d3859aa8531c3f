"""EPUB: the chapters in reading (spine) order, each read like an HTML page."""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

from doctune.core.ingest.blocks import Block, DocumentText, HeadingTracker
from doctune.core.ingest.readers.archive import check_archive, damaged_package, guarded_blocks
from doctune.core.ingest.readers.html import html_blocks, parse_html


def _chapters(book) -> Iterator[bytes]:
    import ebooklib

    for item_id, _linear in book.spine:
        item = book.get_item_with_id(item_id)
        if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT:
            continue
        if isinstance(item, ebooklib.epub.EpubNav):
            continue
        yield item.get_content()


def _blocks(book) -> Iterator[Block]:
    headings = HeadingTracker()
    for content in _chapters(book):
        yield from html_blocks(parse_html(content), headings)


def open_epub(path: Path) -> DocumentText:
    from ebooklib import epub

    check_archive(path, "epub")
    with damaged_package("epub"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        book = epub.read_epub(str(path), options={"ignore_ncx": True})
        titles = book.get_metadata("DC", "title")
    title = str(titles[0][0]).strip() if titles and titles[0][0] else path.stem
    return DocumentText(title=title, format="epub", blocks=guarded_blocks(_blocks(book), "epub"))
