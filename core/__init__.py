"""DocTune core: every pipeline step, headless, with no Qt import.

Sub-packages, one per pipeline step: ``ingest``, ``teachers``, ``synth``,
``train``, ``export``, ``rag``, ``chat``, ``evaluate``. Shared primitives live in
``events`` (event stream, cancel token), ``fsio`` (crash-safe files),
``project`` (the project folder) and ``config`` (its settings).
"""

__version__ = "0.1.0"
