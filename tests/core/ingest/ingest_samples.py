"""Real sample documents of every supported format, generated for the ingestion tests."""
from __future__ import annotations

from pathlib import Path

LOREM = (
    "The harbour of Valdoria handled grain, salt and timber for three centuries. "
    "Merchants kept ledgers in a counting house beside the customs quay. "
    "Every spring the guild elected a harbour master who set the mooring fees. "
)


def make_pdf(path: Path, pages: list[str], *, running_header: str | None = "Valdoria Annual Report",
             page_footer: bool = True, title: str | None = None) -> Path:
    """A PDF with one body text per page, plus a running header and a 'Page N' footer."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_auto_page_break(False)
    if title:
        pdf.set_title(title)
    for number, body in enumerate(pages, start=1):
        pdf.add_page()
        pdf.set_font("Helvetica", size=9)
        if running_header:
            pdf.set_xy(10, 8)
            pdf.cell(0, 5, running_header)
        pdf.set_font("Helvetica", size=11)
        pdf.set_xy(10, 20)
        pdf.multi_cell(0, 6, body)
        if page_footer:
            pdf.set_font("Helvetica", size=9)
            pdf.set_xy(10, 280)
            pdf.cell(0, 5, f"Page {number} of {len(pages)}")
    pdf.output(str(path))
    return path


def make_encrypted_pdf(path: Path, source: Path, password: str = "secret") -> Path:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(source))
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="AES-128")
    with open(path, "wb") as handle:
        writer.write(handle)
    return path


def make_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = "Harbour Rules"
    document.add_heading("Harbour Rules", level=0)
    document.add_heading("Mooring", level=1)
    document.add_paragraph("Ships moor at the north quay from April to October.")
    document.add_heading("Fees", level=2)
    document.add_paragraph("Fees are paid to the harbour master in silver.")
    table = document.add_table(rows=3, cols=2)
    for row, (ship, fee) in enumerate([("Ship", "Fee"), ("Cog", "4 marks"), ("Galley", "9 marks")]):
        table.cell(row, 0).text = ship
        table.cell(row, 1).text = fee
    document.add_heading("Storms", level=1)
    document.add_paragraph("During storms the chain across the harbour mouth is raised.")
    document.save(str(path))
    return path


def make_epub(path: Path) -> Path:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("valdoria-1")
    book.set_title("Tales of Valdoria")
    book.set_language("en")
    chapters = []
    for number, (heading, text) in enumerate([
        ("The Founding", "Valdoria was founded by salt traders on a marshy island."),
        ("The Great Fire", "A fire in the rope walk destroyed half the town in 1623."),
        ("The New Quay", "The new quay of dressed granite opened in 1701."),
    ], start=1):
        chapter = epub.EpubHtml(title=heading, file_name=f"chap_{number}.xhtml", lang="en")
        chapter.content = f"<html><body><h1>{heading}</h1><p>{text}</p></body></html>"
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    epub.write_epub(str(path), book)
    return path


PDF_PAGES = [
    "Chapter one tells how salt traders settled the marshy island and built the first wooden jetty. "
    "They traded with the river towns upstream and with fishing villages along the coast.",
    "The merchants kept their ledg-\ners in the counting house beside the customs quay. "
    "Every spring the guild elected a harbour master who set the mooring fees.",
    "A great fire in the rope walk destroyed half the town, and the quay was rebuilt in granite. "
    "Afterwards the town council forbade thatched roofs near the warehouses.",
]

HTML_PAGE = """<!DOCTYPE html>
<html><head><title>Valdoria Guild</title>
<style>body { color: red; }</style>
<script>var tracking = "do not index me";</script></head>
<body>
<nav><a href="/">Home</a> | <a href="/about">About us</a></nav>
<header>Site banner text</header>
<main>
<h1>The Guild</h1>
<p>The guild met every <b>Thursday</b> in the counting house.</p>
<h2>Members</h2>
<ul><li>Coopers</li><li>Rope makers</li></ul>
<div style="display: none">hidden promo</div>
</main>
<footer>Copyright footer text</footer>
</body></html>
"""

MARKDOWN = """# Valdoria Notes

An introduction to the town.

## Trade

Grain and salt were the main goods.

```python
# not a heading inside code
print("hello")
```

### Tolls

A toll was charged at the bridge.
"""


def make_good_folder(folder: Path) -> dict[str, Path]:
    """One readable file of each format; returns name → path."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "report.pdf": make_pdf(folder / "report.pdf", PDF_PAGES, title="Valdoria Report"),
        "rules.docx": make_docx(folder / "rules.docx"),
        "tales.epub": make_epub(folder / "tales.epub"),
        "guild.html": folder / "guild.html",
        "notes.md": folder / "notes.md",
        "plain.txt": folder / "plain.txt",
    }
    files["guild.html"].write_text(HTML_PAGE, encoding="utf-8")
    files["notes.md"].write_text(MARKDOWN, encoding="utf-8")
    files["plain.txt"].write_text(LOREM * 4 + "\n\nA second paragraph about the café.\n", encoding="utf-8")
    return files


def make_bad_folder(folder: Path, good_pdf: Path) -> dict[str, Path]:
    """One file per bad-input kind (that a plain file can show); returns kind → path."""
    folder.mkdir(parents=True, exist_ok=True)
    corrupt = folder / "corrupt.pdf"
    corrupt.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n")
    binary = folder / "binary.txt"
    binary.write_bytes(bytes((index * 37 + 11) % 256 for index in range(20000)))
    unsupported = folder / "slides.pptx"
    unsupported.write_bytes(b"PK\x03\x04 not really a deck")
    empty = folder / "empty.md"
    empty.write_bytes(b"")
    encrypted = make_encrypted_pdf(folder / "locked.pdf", good_pdf)
    return {"corrupt": corrupt, "binary": binary, "unsupported": unsupported, "empty": empty, "encrypted": encrypted}
