"""DocTune desktop app (PySide6), a thin layer over doctune.core."""
