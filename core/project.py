"""The project folder: one directory the user can copy, back up or move.

Layout (see DESIGN.md)::

    <project>/
      doctune.toml   settings (ProjectConfig), with a schema version
      lancedb/       documents, chunks and other tables
      synth/         generated training items (append-only JSONL)
      eval/          held-out questions and evaluation runs
      runs/<id>/     training runs, exports
      reports/       HTML reports
      cache/         things derived once and reused (replay answers, base GGUF)
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from doctune.core.config import ConfigError, ProjectConfig, config_to_dict, parse_config
from doctune.core.errors import UserError
from doctune.core.fsio import atomic_write_text
from doctune.core.records.layout import CONFIG_NAME, SUBFOLDERS, ProjectLayout

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROJECT_ENV = "DOCTUNE_PROJECT"


class ProjectError(Exception):
    """A project folder that cannot be used; the message says why and what to do."""


UserError.register(ProjectError)


@dataclass
class Project:
    root: Path
    config: ProjectConfig

    # ----- opening and creating -------------------------------------------------
    @classmethod
    def create(cls, folder: str | os.PathLike, name: str | None = None) -> Project:
        root = Path(folder).expanduser().resolve()
        if (root / CONFIG_NAME).exists():
            raise ProjectError(f"{root} is already a DocTune project (it has {CONFIG_NAME}).")
        if root.exists() and not root.is_dir():
            raise ProjectError(f"{root} exists and is not a folder.")
        root.mkdir(parents=True, exist_ok=True)
        config = ProjectConfig()
        config.project.name = name or root.name
        project = cls(root, config)
        for sub in SUBFOLDERS:
            (root / sub).mkdir(exist_ok=True)
        project.save()
        return project

    @classmethod
    def open(cls, folder: str | os.PathLike) -> Project:
        root = Path(folder).expanduser().resolve()
        path = root / CONFIG_NAME
        if not path.exists():
            raise ProjectError(
                f"{root} is not a DocTune project (no {CONFIG_NAME}). "
                f"Create one with: doctune new {root}"
            )
        if not path.is_file():
            raise ProjectError(f"{path} is a {'folder' if path.is_dir() else 'special file'}, not the project's "
                               f"settings file; DocTune needs {CONFIG_NAME} to be a text file there. Move it "
                               f"away, then create the settings again with: doctune new {root}")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from None
        except OSError as exc:
            raise ProjectError(f"The settings file {path} cannot be read ({exc.strerror or exc}). "
                               "Check its permissions.") from None
        project = cls(root, parse_config(data, str(path)))
        for sub in SUBFOLDERS:
            try:
                (root / sub).mkdir(exist_ok=True)
            except OSError:
                pass  # a read-only project can still be read; a step that writes there says what is wrong
        return project

    @classmethod
    def locate(cls, folder: str | os.PathLike | None = None) -> Project:
        """Open the project given, else ``$DOCTUNE_PROJECT``, else the current folder."""
        chosen = folder or os.environ.get(PROJECT_ENV) or Path.cwd()
        return cls.open(chosen)

    def save(self) -> None:
        text = tomli_w.dumps(config_to_dict(self.config))
        atomic_write_text(self.config_path, text)

    # ----- paths (``core.records.layout`` owns them) -----------------------------
    @property
    def layout(self) -> ProjectLayout:
        return ProjectLayout(self.root)

    @property
    def config_path(self) -> Path:
        return self.layout.config

    @property
    def lancedb_dir(self) -> Path:
        return self.layout.lancedb

    @property
    def synth_dir(self) -> Path:
        return self.layout.synth

    @property
    def eval_dir(self) -> Path:
        return self.layout.eval

    @property
    def runs_dir(self) -> Path:
        return self.layout.runs

    @property
    def reports_dir(self) -> Path:
        return self.layout.reports

    @property
    def cache_dir(self) -> Path:
        return self.layout.cache


__all__ = ["Project", "ProjectError", "ConfigError", "CONFIG_NAME", "PROJECT_ENV"]
