"""Look: Fusion style following the system's light or dark scheme, plus a few touches."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

STYLE = """
QListWidget#sidebar { border: none; padding: 8px 0; font-size: 11pt; outline: 0; }
QListWidget#sidebar::item { padding: 9px 14px; border-radius: 6px; margin: 1px 8px; }
QListWidget#sidebar::item:selected { background: palette(highlight); color: palette(highlighted-text); }
QWidget#side { background: palette(base); }
QLabel#explanation { color: palette(placeholder-text); }
QLabel#warning { color: #d35400; font-weight: bold; }
QPushButton { padding: 5px 14px; }
"""


def is_dark() -> bool:
    hints = QGuiApplication.styleHints()
    return hints.colorScheme() == Qt.ColorScheme.Dark


def dark_palette() -> QPalette:
    palette = QPalette()
    base, window, text = QColor(32, 33, 36), QColor(41, 42, 45), QColor(232, 234, 237)
    for role, colour in (
        (QPalette.ColorRole.Window, window), (QPalette.ColorRole.WindowText, text),
        (QPalette.ColorRole.Base, base), (QPalette.ColorRole.AlternateBase, window),
        (QPalette.ColorRole.Text, text), (QPalette.ColorRole.Button, window),
        (QPalette.ColorRole.ButtonText, text), (QPalette.ColorRole.ToolTipBase, base),
        (QPalette.ColorRole.ToolTipText, text), (QPalette.ColorRole.Highlight, QColor(47, 128, 237)),
        (QPalette.ColorRole.HighlightedText, QColor(255, 255, 255)), (QPalette.ColorRole.Link, QColor(110, 168, 254)),
        (QPalette.ColorRole.PlaceholderText, QColor(154, 160, 166)),
    ):
        palette.setColor(role, colour)
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(120, 120, 120))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(120, 120, 120))
    return palette


def apply_theme(app: QApplication) -> None:
    """Fusion everywhere (consistent on all platforms), dark palette when the system is dark."""
    app.setStyle("Fusion")
    if is_dark():
        app.setPalette(dark_palette())
    app.setStyleSheet(STYLE)


def configure_pyqtgraph(pg) -> None:
    """Plots in the application's colours (called when the first plot is built)."""
    palette = QApplication.instance().palette()
    pg.setConfigOptions(antialias=True, background=palette.color(QPalette.ColorRole.Base),
                        foreground=palette.color(QPalette.ColorRole.Text))
