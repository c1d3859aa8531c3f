"""DOCX: paragraphs and tables in document order; Heading/Title styles become headings."""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from doctune.core.ingest.blocks import Block, DocumentText, HeadingTracker
from doctune.core.ingest.normalize import clean
from doctune.core.ingest.readers.archive import check_archive, damaged_package, guarded_blocks

_HEADING_STYLE = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)


def _heading_level(style_name: str) -> int | None:
    if style_name.lower() == "title":
        return 0
    match = _HEADING_STYLE.match(style_name.strip())
    return int(match.group(1)) if match else None


def _table_text(table) -> str:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(clean(cell.text).split())
            if not cells or cells[-1] != text:  # merged cells repeat their text
                cells.append(text)
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _blocks(document) -> Iterator[Block]:
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    headings = HeadingTracker()
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = clean(item.text).strip()
            if not text:
                continue
            level = _heading_level(item.style.name if item.style is not None else "")
            if level is None:
                yield Block(text, heading_path=headings.path)
            else:
                yield Block(text, heading_path=headings.enter(level, text), heading=True)
        elif isinstance(item, Table):
            text = _table_text(item)
            if text:
                yield Block(text, heading_path=headings.path)


def open_docx(path: Path) -> DocumentText:
    import docx

    check_archive(path, "docx")
    with damaged_package("docx"):
        document = docx.Document(str(path))
        title = (document.core_properties.title or "").strip() or path.stem
    return DocumentText(title=title, format="docx", blocks=guarded_blocks(_blocks(document), "docx"))
