"""PDF: text per page with pypdf, then de-hyphenation, paragraphs, and running headers/footers removed."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from doctune.core.ingest.blocks import Block, DocumentText, ReadFailure
from doctune.core.ingest.normalize import clean, pdf_paragraphs, remove_repeated_edges


def _open_reader(path: Path):
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise FileNotDecryptedError("password required")
        return reader, len(reader.pages)
    except FileNotDecryptedError:
        raise ReadFailure(
            "the PDF is protected by a password",
            "open it with its password and save an unprotected copy (e.g. 'Print to PDF'), then add that copy",
        ) from None
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise ReadFailure(
            f"the PDF is damaged or not a PDF ({type(exc).__name__}: {exc})",
            "check that it opens in a PDF viewer; re-save or re-download it, then add it again",
        ) from None


def _page_texts(reader) -> list[str]:
    from pypdf.errors import PdfReadError

    texts = []
    for number, page in enumerate(reader.pages, start=1):
        try:
            texts.append(clean(page.extract_text() or ""))
        except (PdfReadError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ReadFailure(
                f"page {number} of the PDF cannot be read ({type(exc).__name__}: {exc})",
                "check that it opens in a PDF viewer; re-save it (e.g. 'Print to PDF'), then add it again",
            ) from None
    return texts


def _blocks(pages: list[str]) -> Iterator[Block]:
    for number, text in enumerate(remove_repeated_edges(pages), start=1):
        for paragraph in pdf_paragraphs(text):
            yield Block(paragraph, page=number)


def _title(reader, path: Path) -> str:
    try:
        title = (reader.metadata or {}).get("/Title")
    except Exception:  # broken metadata is no reason to refuse the text
        title = None
    return str(title).strip() if title and str(title).strip() else path.stem


def open_pdf(path: Path) -> DocumentText:
    reader, page_count = _open_reader(path)
    pages = _page_texts(reader)
    if not any(text.strip() for text in pages):
        raise ReadFailure(
            f"no text found in the PDF's {page_count} page(s) (it may be scanned images)",
            "run it through OCR (text recognition) first, then add the result",
        )
    return DocumentText(title=_title(reader, path), format="pdf", blocks=_blocks(pages), pages=page_count)
