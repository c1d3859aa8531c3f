"""Document ingestion: files → normalised text → token-aware chunks in LanceDB.

Public surface: ``run(IngestParams(project_dir=..., paths=[...]), events=, cancel=)``
→ ``IngestResult``; the tables are read through ``doctune.core.store``.
"""
from doctune.core.ingest.readers import FORMATS
from doctune.core.ingest.step import FileOutcome, IngestInputError, IngestParams, IngestResult, run

__all__ = ["run", "IngestParams", "IngestResult", "FileOutcome", "IngestInputError", "FORMATS"]
