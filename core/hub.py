"""Hugging Face hub downloads reported as DocTune progress events.

huggingface_hub draws its own tqdm bars; ``progress_bar_class(events)`` is a
tqdm class that draws nothing and sends ``progress`` events (bytes, rate, ETA)
instead, so the CLI's bar and the window show downloads like any other step.
"""
from __future__ import annotations

import os
import time

from doctune.core.events import Events


def hub_offline(project_offline: bool) -> bool:
    """Downloads are off when the project is offline or ``HF_HUB_OFFLINE`` is set."""
    return project_offline or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


class _Silent:
    """A text stream that drops what it is given: the bar is shown through events, not drawn."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def progress_bar_class(events: Events, default_message: str = "downloading"):
    """A tqdm class that reports a download as progress events (bytes, rate, ETA)."""
    from tqdm.auto import tqdm

    class EventTqdm(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = False
            kwargs["file"] = _Silent()
            super().__init__(*args, **kwargs)
            self._last = 0.0

        def update(self, n=1):
            shown = super().update(n)
            now = time.monotonic()
            if now - self._last >= 0.5 or (self.total and self.n >= self.total):
                self._last = now
                rate = self.format_dict.get("rate")
                eta = (self.total - self.n) / rate if rate and self.total else None
                events.progress(self.n, self.total, message=self.desc or default_message,
                                unit="bytes" if self.unit == "B" else self.unit,
                                rate=round(rate, 1) if rate else None,
                                eta_s=round(eta, 1) if eta is not None else None)
            return shown

    return EventTqdm
