"""``doctune sample DIR --offline-check``: the project the window's "offline pipeline check" opens (slow)."""
from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_offline_check_project_has_documents_and_tiny_models(tmp_path):
    from doctune.core.project import Project
    from doctune.core.store import list_documents

    folder = tmp_path / "offline-check"
    result = subprocess.run([sys.executable, "-m", "doctune.core", "sample", str(folder), "--offline-check"],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    project = Project.open(folder)
    assert project.config.privacy.offline
    assert project.config.teacher.model_path.endswith(".gguf")
    assert (folder / "cache" / "tiny-models").is_dir()
    documents = list_documents(project)
    assert len(documents) == 20 and all(doc["status"] == "ok" for doc in documents)
