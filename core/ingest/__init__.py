"""Document ingestion: files → normalised text → token-aware chunks in LanceDB.

Public surface: ``run(IngestParams(project_dir=..., paths=[...]), events=, cancel=)``
→ ``IngestResult``; the tables are read through ``doctune.core.store``.
"""
from doctune.core.ingest.pipeline import FileOutcome, IngestInputError, IngestParams, IngestResult, run
from doctune.core.ingest.readers import FORMATS

__all__ = ["run", "IngestParams", "IngestResult", "FileOutcome", "IngestInputError", "FORMATS"]
