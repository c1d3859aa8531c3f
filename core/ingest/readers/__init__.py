"""One reader per format; each returns a :class:`DocumentText` whose blocks are read lazily."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from doctune.core.ingest.blocks import DocumentText, ReadFailure

FORMATS: dict[str, str] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".epub": "epub",
}
_ALTERNATIVES = {
    ".doc": "save it as .docx (Word: File › Save As › Word Document)",
    ".rtf": "save it as .docx or .txt",
    ".odt": "save it as .docx",
    ".pages": "export it as .docx or PDF",
}


def format_of(path: Path) -> str:
    """The format name for ``path``'s extension; ReadFailure if it is not supported."""
    suffix = path.suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    supported = ", ".join(sorted({key for key in FORMATS}))
    hint = _ALTERNATIVES.get(suffix, f"convert it to one of: {supported}")
    kind = f"'{suffix}' files" if suffix else "files without an extension"
    raise ReadFailure(f"DocTune cannot read {kind}", hint)


def _readers() -> dict[str, Callable[[Path], DocumentText]]:
    from doctune.core.ingest.readers.docx import open_docx
    from doctune.core.ingest.readers.epub import open_epub
    from doctune.core.ingest.readers.html import open_html
    from doctune.core.ingest.readers.pdf import open_pdf
    from doctune.core.ingest.readers.text import open_text

    return {
        "pdf": open_pdf,
        "docx": open_docx,
        "markdown": lambda path: open_text(path, markdown=True),
        "text": open_text,
        "html": open_html,
        "epub": open_epub,
    }


def open_document(path: Path, fmt: str) -> DocumentText:
    return _readers()[fmt](path)


__all__ = ["FORMATS", "format_of", "open_document", "ReadFailure", "DocumentText"]
