"""One retrieved chunk, as search returns it and as a chat answer cites it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    doc_id: str
    doc_path: str | None
    doc_title: str | None
    page_start: int | None
    page_end: int | None
    text: str
    score: float

    @property
    def pages(self) -> str:
        """``"p. 3"``, ``"pp. 3-4"`` or ``""`` for formats without pages."""
        if self.page_start is None:
            return ""
        if self.page_end is None or self.page_end == self.page_start:
            return f"p. {self.page_start}"
        return f"pp. {self.page_start}-{self.page_end}"

    @property
    def label(self) -> str:
        """How a source is named to the model and the user: title and pages."""
        title = self.doc_title or (self.doc_path or self.doc_id)
        return f"{title}, {self.pages}" if self.pages else title
