"""The spread of the training material over the documents: per document, synthetic tokens per source token."""
from __future__ import annotations

import pytest

from doctune.core.items import TrainingItem
from doctune.core.synth.coverage import coverage_spread, document_coverage


def chunk(doc: str, tokens: int) -> dict:
    return {"doc_id": doc, "doc_path": f"/docs/{doc}.md", "n_tokens": tokens}


def document(doc: str, chars: int) -> TrainingItem:
    return TrainingItem(id=f"{doc}-{chars}", kind="document", doc_id=doc, text="x" * chars)


def qa(doc: str, chars: int) -> TrainingItem:
    return TrainingItem(id=f"{doc}-qa-{chars}", kind="qa", doc_id=doc, messages=[
        {"role": "user", "content": "q" * (chars // 2)}, {"role": "assistant", "content": "a" * (chars // 2)}])


def test_each_document_is_measured_against_its_own_source_tokens():
    chunks = [chunk("a", 100), chunk("a", 100), chunk("b", 50), chunk("c", 80)]
    items = [document("a", 1600), qa("a", 800), document("b", 400), qa("b", 400), document("gone", 4000)]
    rows = {row.name: row for row in document_coverage(items, chunks)}
    assert set(rows) == {"a.md", "b.md", "c.md"}  # an item of a document no longer in the project is left out
    assert (rows["a.md"].source_tokens, rows["a.md"].items, rows["a.md"].synthetic_tokens) == (200, 2, 600)
    assert rows["a.md"].amplification == pytest.approx(3.0)
    assert rows["b.md"].amplification == pytest.approx(4.0)
    spread = coverage_spread(list(rows.values()))
    assert (spread.lowest, spread.median, spread.highest) == (0.0, pytest.approx(3.0), pytest.approx(4.0))
    assert spread.least == "c.md" and spread.most == "b.md" and spread.uncovered == ("c.md",) and spread.uneven
    assert "1 document(s) have no material yet: c.md" in spread.describe()


def test_an_even_spread_is_not_flagged_and_a_wide_one_is():
    chunks = [chunk("a", 100), chunk("b", 100)]
    even = coverage_spread(document_coverage([document("a", 1600), document("b", 2000)], chunks))
    assert not even.uneven
    assert even.describe() == ("Per document the material holds 4.0× to 5.0× the source tokens (median 4.5×); "
                               "least covered: a.md.")
    wide = coverage_spread(document_coverage([document("a", 400), document("b", 2000)], chunks))
    assert wide.uneven and "uneven" in wide.describe()


def test_no_source_tokens_means_no_spread():
    assert coverage_spread(document_coverage([], [])) is None
