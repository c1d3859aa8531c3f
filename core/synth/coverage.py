"""How evenly the training material covers the documents: synthetic tokens per source token, document by document.

A high amplification target is only worth its cost if every document gets its share: the planner gives each
chunk the same number of tasks per recipe, but failed and filtered replies, deleted items and chunks of very
different lengths make the achieved amplification differ between documents. The spread names the least covered
document so a user can generate again (failed tasks are retried) or look at why.
"""
from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from doctune.core.teachers import estimate_tokens

UNEVEN = 2.0
"""Most covered ÷ least covered document above which the spread is called uneven."""


@dataclass(frozen=True)
class DocumentCoverage:
    doc_id: str
    name: str
    source_tokens: int
    items: int
    synthetic_tokens: int

    @property
    def amplification(self) -> float:
        return self.synthetic_tokens / self.source_tokens if self.source_tokens else 0.0


@dataclass(frozen=True)
class CoverageSpread:
    """Achieved amplification per document: lowest, median and highest, and which documents are at the ends."""

    documents: int
    lowest: float
    median: float
    highest: float
    least: str
    most: str
    uncovered: tuple[str, ...]

    @property
    def uneven(self) -> bool:
        return bool(self.uncovered) or (self.lowest > 0 and self.highest / self.lowest > UNEVEN)

    def as_dict(self) -> dict[str, Any]:
        return {"documents": self.documents, "lowest": round(self.lowest, 2), "median": round(self.median, 2),
                "highest": round(self.highest, 2), "least": self.least, "most": self.most,
                "uncovered": list(self.uncovered), "uneven": self.uneven}

    def describe(self) -> str:
        """One or two sentences for a person."""
        if self.documents == 1:
            text = f"The document's material holds {self.lowest:.1f}× its source tokens."
        else:
            text = (f"Per document the material holds {self.lowest:.1f}× to {self.highest:.1f}× the source tokens "
                    f"(median {self.median:.1f}×); least covered: {self.least}.")
        if self.uncovered:
            shown = ", ".join(self.uncovered[:3]) + (f" and {len(self.uncovered) - 3} more"
                                                     if len(self.uncovered) > 3 else "")
            text += f" {len(self.uncovered)} document(s) have no material yet: {shown}."
        elif self.uneven:
            text += f" That is uneven (more than {UNEVEN:g}× apart): generating again retries the failed items."
        return text


def item_tokens(item: Any) -> int:
    """The synthetic tokens an item trains on (estimated as the estimate counts them: ~4 characters a token)."""
    if item.kind == "document":
        return estimate_tokens(item.text)
    return estimate_tokens("".join(message.content for message in item.messages))


def document_coverage(items: Iterable[Any], chunks: Sequence[Mapping[str, Any]],
                      names: Mapping[str, str] | None = None) -> list[DocumentCoverage]:
    """One row per document that has chunks: its source tokens, items and their synthetic tokens (named by
    ``names``, else by the file name of the chunks' document)."""
    names = dict(names or {})
    source: Counter[str] = Counter()
    for chunk in chunks:
        doc_id = str(chunk.get("doc_id") or "")
        source[doc_id] += int(chunk.get("n_tokens") or 0)
        if doc_id not in names and chunk.get("doc_path"):
            names[doc_id] = PurePath(str(chunk["doc_path"])).name
    counts: Counter[str] = Counter()
    tokens: Counter[str] = Counter()
    for item in items:
        if item.doc_id in source:
            counts[item.doc_id] += 1
            tokens[item.doc_id] += item_tokens(item)
    return [DocumentCoverage(doc_id, names.get(doc_id) or doc_id[:12], source[doc_id], counts[doc_id],
                             tokens[doc_id]) for doc_id in sorted(source) if doc_id]


def coverage_spread(rows: Sequence[DocumentCoverage]) -> CoverageSpread | None:
    """The spread of ``rows`` (None when no document has source tokens)."""
    rows = [row for row in rows if row.source_tokens > 0]
    if not rows:
        return None
    ordered = sorted(rows, key=lambda row: (row.amplification, row.name))
    return CoverageSpread(
        documents=len(rows), lowest=ordered[0].amplification, highest=ordered[-1].amplification,
        median=statistics.median(row.amplification for row in rows), least=ordered[0].name, most=ordered[-1].name,
        uncovered=tuple(row.name for row in ordered if row.items == 0))
