"""Each reader on real generated files: extracted text, headings, pages, normalisation."""
from __future__ import annotations

import pytest
from ingest_samples import HTML_PAGE, MARKDOWN, PDF_PAGES, make_docx, make_encrypted_pdf, make_epub, make_pdf

from doctune.core.ingest.blocks import ReadFailure
from doctune.core.ingest.normalize import clean, dehyphenate, remove_repeated_edges
from doctune.core.ingest.readers import format_of, open_document


def read(path):
    document = open_document(path, format_of(path))
    return document, list(document.blocks)


def test_pdf_text_per_page_without_running_header_footer_and_hyphenation(tmp_path):
    document, blocks = read(make_pdf(tmp_path / "r.pdf", PDF_PAGES, title="Valdoria Report"))
    assert document.pages == 3 and document.title == "Valdoria Report"
    assert [block.page for block in blocks] == [1, 2, 3]
    text = "\n".join(block.text for block in blocks)
    assert "Valdoria Annual Report" not in text and "Page 2 of 3" not in text
    assert "kept their ledgers in the counting house" in text
    assert blocks[0].text.startswith("Chapter one tells how salt traders")
    assert blocks[2].text.endswith("near the warehouses.")


def test_pdf_of_many_pages_keeps_page_numbers(tmp_path):
    pages = [f"Body of page {word}: the tide rose and the ships waited." for word in
             ("one", "two", "three", "four", "five", "six", "seven")]
    _, blocks = read(make_pdf(tmp_path / "seven.pdf", pages))
    assert [block.page for block in blocks] == list(range(1, 8))
    assert blocks[4].text == "Body of page five: the tide rose and the ships waited."


def test_encrypted_pdf_is_refused_with_a_hint(tmp_path):
    source = make_pdf(tmp_path / "r.pdf", PDF_PAGES)
    with pytest.raises(ReadFailure) as caught:
        read(make_encrypted_pdf(tmp_path / "locked.pdf", source))
    assert "password" in caught.value.reason and "unprotected copy" in caught.value.hint


def test_docx_paragraphs_headings_and_tables(tmp_path):
    document, blocks = read(make_docx(tmp_path / "rules.docx"))
    assert document.title == "Harbour Rules"
    table = next(block for block in blocks if "|" in block.text)
    assert table.text == "Ship | Fee\nCog | 4 marks\nGalley | 9 marks"
    assert table.heading_path == ("Harbour Rules", "Mooring", "Fees")
    storms = next(block for block in blocks if block.text.startswith("During storms"))
    assert storms.heading_path == ("Harbour Rules", "Storms")
    assert [block.text for block in blocks if block.heading] == ["Harbour Rules", "Mooring", "Fees", "Storms"]


def test_epub_chapters_in_reading_order(tmp_path):
    document, blocks = read(make_epub(tmp_path / "tales.epub"))
    assert document.title == "Tales of Valdoria"
    assert [block.text for block in blocks if block.heading] == ["The Founding", "The Great Fire", "The New Quay"]
    assert blocks[3].text == "A fire in the rope walk destroyed half the town in 1623."
    assert blocks[3].heading_path == ("The Great Fire",)


def test_html_keeps_visible_text_only(tmp_path):
    path = tmp_path / "guild.html"
    path.write_text(HTML_PAGE, encoding="utf-8")
    document, blocks = read(path)
    text = "\n".join(block.text for block in blocks)
    assert document.title == "Valdoria Guild"
    assert "The guild met every Thursday in the counting house." in text
    for boilerplate in ("tracking", "color", "About us", "Site banner", "Copyright", "hidden promo"):
        assert boilerplate not in text
    assert next(block for block in blocks if block.text == "Coopers").heading_path == ("The Guild", "Members")


def test_markdown_headings_outside_code_fences(tmp_path):
    path = tmp_path / "notes.md"
    path.write_text(MARKDOWN, encoding="utf-8")
    _, blocks = read(path)
    assert [block.text for block in blocks if block.heading] == ["Valdoria Notes", "Trade", "Tolls"]
    code = next(block for block in blocks if "print" in block.text)
    assert "# not a heading inside code" in code.text and not code.heading
    assert blocks[-1].heading_path == ("Valdoria Notes", "Trade", "Tolls")


def test_markdown_title_is_its_first_level_one_heading(tmp_path):
    titled = tmp_path / "notes.md"
    titled.write_text(MARKDOWN, encoding="utf-8")
    untitled = tmp_path / "plain-notes.md"
    untitled.write_text("```\n# inside a fence\n```\n\n## Only a subheading\n\nText.\n", encoding="utf-8")
    assert read(titled)[0].title == "Valdoria Notes"
    assert read(untitled)[0].title == "plain-notes"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1"])
def test_text_encodings_are_detected(tmp_path, encoding):
    text = "Café crème, naïve façade — 5 €\n\nSecond paragraph: Ærø, Zürich, señor."
    if encoding == "latin-1":
        text = text.replace("—", "-").replace("€", "EUR")
    path = tmp_path / f"{encoding}.txt"
    path.write_bytes(text.encode(encoding))
    _, blocks = read(path)
    assert [block.text for block in blocks] == text.split("\n\n")


def test_binary_data_named_txt_is_refused(tmp_path):
    path = tmp_path / "data.txt"
    path.write_bytes(bytes((index * 37 + 11) % 256 for index in range(5000)))
    with pytest.raises(ReadFailure, match="binary data"):
        read(path)


def test_unsupported_extension_names_an_alternative(tmp_path):
    with pytest.raises(ReadFailure) as caught:
        format_of(tmp_path / "old.doc")
    assert "'.doc'" in caught.value.reason and ".docx" in caught.value.hint


def test_clean_normalises_spaces_and_invisible_characters():
    assert clean("a\u00a0\u00a0b\tc\u200bd\u00ade  \r\n  f\x07") == "a b cde\nf"


def test_dehyphenate_joins_only_broken_lowercase_words():
    assert dehyphenate("exam-\nple and North-\nEast") == "example and North-\nEast"


def test_repeated_edges_removed_only_at_page_edges():
    words = ["one", "two", "three", "four"]
    pages = [f"Annual Report\nintro {word}\nAnnual Report\nmore {word}\nend {word}\n- {number} -"
             for number, word in enumerate(words, start=1)]
    cleaned = remove_repeated_edges(pages)
    assert cleaned[1] == "intro two\nAnnual Report\nmore two\nend two"
    assert remove_repeated_edges(pages[:2]) == pages[:2]
