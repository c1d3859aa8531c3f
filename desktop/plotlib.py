"""pyqtgraph, imported on a background thread so that no page waits for it on the event loop.

Importing pyqtgraph takes 0.3–0.5 s (numpy, three more Qt modules, and pyqtgraph copying
every PySide6 class into its own namespace). On the GUI thread that froze the window the
first time the Train or Evaluate page opened. The import creates no Qt objects (measured:
no ``QObject`` lives outside the GUI thread afterwards), and it runs as Python bytecode
between short C calls, so the GIL passes back to the event loop every few milliseconds
(longest stall measured ~20–30 ms against ~300 ms for the same import on the GUI thread).

The window starts the import shortly after its first paint (``preload``); a plot that is
shown earlier waits for ``ready`` instead of importing on the GUI thread itself — a second
importer would block on the module's import lock until the first one finished anyway.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, Signal

QUEUED_ONCE = Qt.ConnectionType(Qt.ConnectionType.QueuedConnection.value | Qt.ConnectionType.SingleShotConnection.value)
_library: PlotLibrary | None = None


class PlotLibrary(QObject):
    """The one background import of pyqtgraph; ``ready`` is emitted on the GUI thread when it is done."""

    imported = Signal()  # emitted by the import thread, delivered queued on the GUI thread
    ready = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.is_ready = False
        self._thread: threading.Thread | None = None
        self.imported.connect(self._on_imported, Qt.ConnectionType.QueuedConnection)

    def preload(self) -> None:
        """Start the import (once); returns at once."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._import, name="import pyqtgraph", daemon=True)
            self._thread.start()

    def when_ready(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, from the event loop, when pyqtgraph is imported (starting the import if needed).

        Always queued, so the caller's event (showing a page) ends before the plot is built; ``callback``
        should be a method of a ``QObject``, so that the call is dropped if its object is gone.
        """
        self.ready.connect(callback, QUEUED_ONCE)
        if self.is_ready:
            self.ready.emit()
        else:
            self.preload()

    def _import(self) -> None:
        try:
            import pyqtgraph  # noqa: F401
        finally:  # on failure the plots' own import raises the error, and they show it in place of the chart
            self.imported.emit()

    def _on_imported(self) -> None:
        self.is_ready = True
        self.ready.emit()


def plot_library() -> PlotLibrary:
    """The application's ``PlotLibrary`` (created on first use, on the GUI thread)."""
    global _library
    if _library is None:
        _library = PlotLibrary()
    return _library
