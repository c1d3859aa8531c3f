"""Where every file of a project lives: the one place that builds those paths.

::

    <project>/
      doctune.toml
      lancedb/documents.lance          the documents table (LanceDB)
      synth/items.jsonl                training items; failures.jsonl (outcomes), deleted.jsonl, entities.jsonl
      eval/questions.jsonl             held-out questions; failures.jsonl (their outcomes)
      eval/<eval-id>/                  meta.json, answers.jsonl, judgments.jsonl, results.jsonl, summary.json
      runs/<run-id>/                   config.json, metrics.jsonl, checkpoints/, adapter/, summary.json
      runs/<run-id>/export/            manifest.json, verification.json/.txt, merged/, GGUF files, Modelfile
      reports/                         HTML reports
      cache/                           documents.json, teacher-speed.json, teacher-check.json, replay/, base GGUFs

The classes are plain path arithmetic (nothing is read or created), so the
window can ask where a file is without loading any step.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CONFIG_NAME = "doctune.toml"
SUBFOLDERS = ("lancedb", "synth", "eval", "runs", "reports", "cache")


@dataclass(frozen=True)
class RunLayout:
    """``runs/<run-id>/``: one training run and its export."""

    folder: Path

    @property
    def run_id(self) -> str:
        return self.folder.name

    @property
    def config(self) -> Path:
        return self.folder / "config.json"

    @property
    def summary(self) -> Path:
        return self.folder / "summary.json"

    @property
    def metrics(self) -> Path:
        return self.folder / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.folder / "checkpoints"

    @property
    def latest_checkpoint(self) -> Path:
        """The pointer at the newest complete checkpoint."""
        return self.checkpoints / "latest.json"

    @property
    def adapter(self) -> Path:
        return self.folder / "adapter"

    @property
    def export(self) -> ExportLayout:
        return ExportLayout(self.folder / "export")


def checkpoint_step(checkpoint: Path) -> Path:
    """The file naming the step a checkpoint folder holds (written last: its presence marks it complete)."""
    return checkpoint / "step.json"


@dataclass(frozen=True)
class ExportLayout:
    """An export folder (a run's ``export/``, or the base model's under ``cache/``)."""

    folder: Path

    @property
    def manifest(self) -> Path:
        return self.folder / "manifest.json"

    @property
    def verification(self) -> Path:
        return self.folder / "verification.json"

    @property
    def verification_text(self) -> Path:
        return self.folder / "verification.txt"

    @property
    def merged(self) -> Path:
        """The merged Hugging Face folder a run's GGUF files are written from."""
        return self.folder / "merged"

    @property
    def modelfile(self) -> Path:
        return self.folder / "Modelfile"

    @property
    def usage(self) -> Path:
        return self.folder / "USAGE.txt"


@dataclass(frozen=True)
class EvalLayout:
    """``eval/<eval-id>/``: one evaluation."""

    folder: Path

    @property
    def meta(self) -> Path:
        return self.folder / "meta.json"

    @property
    def answers(self) -> Path:
        return self.folder / "answers.jsonl"

    @property
    def judgments(self) -> Path:
        return self.folder / "judgments.jsonl"

    @property
    def results(self) -> Path:
        return self.folder / "results.jsonl"

    @property
    def summary(self) -> Path:
        return self.folder / "summary.json"


@dataclass(frozen=True)
class ProjectLayout:
    """The folders and files of the project at ``root``."""

    root: Path

    @classmethod
    def of(cls, root: str | os.PathLike[str]) -> ProjectLayout:
        return cls(Path(root))

    # ----- folders -------------------------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def lancedb(self) -> Path:
        return self.root / "lancedb"

    @property
    def synth(self) -> Path:
        return self.root / "synth"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    # ----- documents -----------------------------------------------------------------------------------------
    @property
    def documents_table(self) -> Path:
        """The LanceDB folder of the documents table (its modification times say when documents changed)."""
        return self.lancedb / "documents.lance"

    @property
    def documents_snapshot(self) -> Path:
        return self.cache / "documents.json"

    # ----- synthesis -----------------------------------------------------------------------------------------
    @property
    def items(self) -> Path:
        return self.synth / "items.jsonl"

    @property
    def item_outcomes(self) -> Path:
        """Why a training item was not written (failed or filtered), one line per task."""
        return self.synth / "failures.jsonl"

    @property
    def deleted_items(self) -> Path:
        return self.synth / "deleted.jsonl"

    @property
    def entities(self) -> Path:
        return self.synth / "entities.jsonl"

    @property
    def questions(self) -> Path:
        return self.eval / "questions.jsonl"

    @property
    def question_outcomes(self) -> Path:
        return self.eval / "failures.jsonl"

    @property
    def teacher_speed(self) -> Path:
        return self.cache / "teacher-speed.json"

    @property
    def teacher_check(self) -> Path:
        return self.cache / "teacher-check.json"

    def base_export(self, name: str) -> Path:
        """The export folder of the base student ``name`` (its verified GGUF files, reused by every run)."""
        return self.cache / "base" / name

    def replay_cache(self, key: str) -> Path:
        """The base student's answers to the replay prompts, for one student and answer length ``key``."""
        return self.cache / "replay" / f"{key}.jsonl"

    def synth_export(self, fmt: str) -> Path:
        """Where ``doctune synth export`` writes the items in ``fmt`` unless told otherwise."""
        return self.synth / f"export-{fmt}.jsonl"

    # ----- runs and evaluations ------------------------------------------------------------------------------
    def run(self, run_id: str) -> RunLayout:
        """The layout of run ``run_id`` (not checked: ``core.runs.run_dir_of`` checks a run id from outside)."""
        return RunLayout(self.runs / run_id)

    def evaluation(self, eval_id: str) -> EvalLayout:
        return EvalLayout(self.eval / eval_id)

    def eval_summaries(self) -> list[Path]:
        """The summary file of every evaluation that has one (unordered)."""
        return list(self.eval.glob(f"*/{EvalLayout(Path()).summary.name}"))
