import json
import subprocess
import sys

import pytest

from doctune.core.config import SCHEMA_VERSION, ConfigError
from doctune.core.project import CONFIG_NAME, Project, ProjectError


def test_new_project_has_layout_and_schema_version(tmp_path):
    project = Project.create(tmp_path / "p")
    for sub in ("lancedb", "synth", "eval", "runs", "reports"):
        assert (project.root / sub).is_dir()
    text = (project.root / CONFIG_NAME).read_text()
    assert f"schema_version = {SCHEMA_VERSION}" in text
    reopened = Project.open(project.root)
    assert reopened.config == project.config
    assert reopened.config.project.name == "p"


def test_opening_reports_every_problem_at_once(tmp_path):
    project = Project.create(tmp_path / "p")
    project.config_path.write_text(
        'schema_version = 1\ncolour = "blue"\n[ingest]\nchunk_tokens = "big"\nchunk_overlap = -3\n'
    )
    with pytest.raises(ConfigError) as caught:
        Project.open(project.root)
    problems = caught.value.problems
    assert len(problems) == 3
    assert any("unknown setting 'colour'" in p for p in problems)
    assert any("ingest.chunk_tokens" in p and "'big'" in p for p in problems)
    assert any("ingest.chunk_overlap" in p for p in problems)


def test_newer_schema_is_refused_in_plain_words(tmp_path):
    project = Project.create(tmp_path / "p")
    project.config_path.write_text(f"schema_version = {SCHEMA_VERSION + 1}\n")
    with pytest.raises(ConfigError, match="newer than this DocTune"):
        Project.open(project.root)


def test_broken_toml_is_a_config_error(tmp_path):
    project = Project.create(tmp_path / "p")
    project.config_path.write_text("[ingest\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Project.open(project.root)


def test_not_a_project_says_how_to_make_one(tmp_path):
    with pytest.raises(ProjectError, match="doctune new"):
        Project.open(tmp_path)


def test_project_from_environment(tmp_path, monkeypatch):
    project = Project.create(tmp_path / "p")
    monkeypatch.setenv("DOCTUNE_PROJECT", str(project.root))
    assert Project.locate().root == project.root


def _doctune(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "doctune.core", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_cli_new_emits_jsonl_and_bad_config_exits_1(tmp_path):
    result = _doctune("--events", "jsonl", "new", str(tmp_path / "p"))
    assert result.returncode == 0, result.stderr
    event = json.loads(result.stdout.strip().splitlines()[-1])
    assert event["event"] == "done" and event["project"] == str(tmp_path / "p")
    (tmp_path / "p" / CONFIG_NAME).write_text("schema_version = 1\nbogus = 1\n")
    result = _doctune("--events", "jsonl", "-p", str(tmp_path / "p"), "new", str(tmp_path / "q"))
    assert result.returncode == 0
    result = _doctune("new", str(tmp_path / "p"))
    assert result.returncode == 1 and "already a DocTune project" in result.stderr
