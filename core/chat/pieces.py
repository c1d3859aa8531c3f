"""Token bytes in, text out as soon as it is certain.

A token is a few bytes, not always a whole character: a multi-byte character
can span tokens, and a random or damaged model can emit bytes that never form
valid UTF-8. ``PieceDecoder`` turns each token's bytes into the text that is
final at that point: an incomplete character waits for its next bytes (at
most three), an invalid byte becomes U+FFFD at once, and text that could be
the start of the stop text waits until it is clearly not (at most the stop
text's length). Nothing is ever held back longer than that.
"""
from __future__ import annotations

import codecs


class PieceDecoder:
    """Incremental UTF-8 decoding (invalid bytes replaced) with a stop text that may span pieces."""

    def __init__(self, stop: str = "") -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = stop
        self._held = ""
        self.stopped = False
        """True once the stop text appeared; nothing after it is ever returned."""

    def feed(self, data: bytes) -> str:
        """The text that ``data`` completes (possibly empty)."""
        return self._release(self._utf8.decode(data))

    def finish(self) -> str:
        """The rest: an unfinished character as U+FFFD and any text held as a possible stop-text start."""
        text = self._release(self._utf8.decode(b"", final=True))
        rest, self._held = self._held, ""
        return text + rest

    def _release(self, text: str) -> str:
        if self.stopped:
            return ""
        text = self._held + text
        self._held = ""
        if not self._stop:
            return text
        at = text.find(self._stop)
        if at >= 0:
            self.stopped = True
            return text[:at]
        keep = _partial_stop_length(text, self._stop)
        if keep:
            text, self._held = text[:-keep], text[-keep:]
        return text


def _partial_stop_length(text: str, stop: str) -> int:
    """Length of the longest end of ``text`` that is a proper start of ``stop``."""
    for length in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:length]):
            return length
    return 0
