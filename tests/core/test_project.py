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


@pytest.mark.parametrize("written", ['"2"', '"1"', "true", "1.0"])
def test_a_schema_version_that_is_not_a_whole_number_is_refused(tmp_path, written):
    project = Project.create(tmp_path / "p")
    project.config_path.write_text(f"schema_version = {written}\n")
    with pytest.raises(ConfigError, match="'schema_version' must be a whole number") as caught:
        Project.open(project.root)
    assert str(project.config_path) in str(caught.value)


def test_a_settings_file_that_is_a_folder_is_a_clear_error(tmp_path):
    root = tmp_path / "p"
    (root / CONFIG_NAME).mkdir(parents=True)
    with pytest.raises(ProjectError, match="is a folder, not the project's settings file"):
        Project.open(root)
    result = _doctune("status", "-p", str(root))
    assert result.returncode == 1 and "is a folder" in result.stderr and "Traceback" not in result.stderr


def test_a_read_only_project_can_be_read_and_says_why_it_cannot_be_changed(tmp_path):
    """Run as a user without write access (root gives up its override in the child)."""
    import os

    from doctune.core.store import Store

    root = tmp_path / "p"
    project = Project.create(root)
    Store(project)  # the tables exist, as in any project that has been used
    (tmp_path / "a.txt").write_text("A document about the harbour.", encoding="utf-8")
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            os.chmod(os.path.join(folder, name), 0o555 if name in dirs else 0o444)
    os.chmod(root, 0o555)
    try:
        status = _doctune_unprivileged("status", "-p", str(root))
        assert status.returncode == 0 and "No documents yet" in status.stdout, status.stderr
        added = _doctune_unprivileged("add", str(tmp_path / "a.txt"), "-p", str(root))
        assert added.returncode == 1 and "Traceback" not in added.stderr, added.stderr
        assert "cannot be written" in added.stderr and "writable" in added.stderr
        removed = _doctune_unprivileged("remove", "--all", "-p", str(root))
        assert removed.returncode == 1 and "Traceback" not in removed.stderr and "writable" in removed.stderr
    finally:
        for folder, _dirs, _files in os.walk(root):
            os.chmod(folder, 0o755)


def _doctune_unprivileged(*args):
    """``doctune`` in a child that cannot override file permissions (as a normal user), even when run as root."""
    import ctypes
    import os

    def drop_override():
        if os.geteuid() == 0:
            libc = ctypes.CDLL(None, use_errno=True)
            for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
                libc.prctl(24, capability, 0, 0, 0)  # PR_CAPBSET_DROP

    return subprocess.run([sys.executable, "-m", "doctune.core", *args], capture_output=True, text=True,
                          timeout=120, preexec_fn=drop_override, env={**os.environ, "COLUMNS": "200"})
