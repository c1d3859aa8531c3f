"""A 100 MB text file streams through ingestion: peak memory stays far below its size."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from doctune.core.project import Project
from doctune.core.store import Store, list_documents

SIZE = 100_000_000
MEASURE = """
import json, resource, sys
from doctune.core.cli import main
code = main(["--events", "jsonl", "add", sys.argv[1], "-p", sys.argv[2]])
print(json.dumps({"exit_code": code, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_text_file(path: Path, size: int) -> None:
    words = "harbour guild ledger quay salt grain timber merchant toll bridge fire granite council".split()
    paragraphs = [" ".join(words[(index * 7 + k) % len(words)] for k in range(40 + index % 30)).capitalize() + "."
                  for index in range(500)]
    block = "\n\n".join(paragraphs) + "\n\n"
    with open(path, "w", encoding="utf-8") as handle:
        written = 0
        while written < size:
            handle.write(block)
            written += len(block)


def ingest_measuring_memory(path: Path, project: Project) -> dict:
    result = subprocess.run([sys.executable, "-c", MEASURE, str(path), str(project.root)],
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.slow
def test_a_100_mb_text_file_streams(tmp_path):
    small, large = tmp_path / "small.txt", tmp_path / "large.txt"
    write_text_file(small, 100_000)
    write_text_file(large, SIZE)
    baseline = ingest_measuring_memory(small, Project.create(tmp_path / "p-small"))
    project = Project.create(tmp_path / "p-large")
    measured = ingest_measuring_memory(large, project)
    assert measured["exit_code"] == 0
    [document] = list_documents(project)
    assert document["status"] == "ok" and document["chunks"] > 10_000
    assert Store(project).chunks.count_rows() == document["chunks"]
    growth_mb = measured["peak_rss_mb"] - baseline["peak_rss_mb"]
    print(f"peak RSS {measured['peak_rss_mb']:.0f} MB (small file: {baseline['peak_rss_mb']:.0f} MB)")
    # holding the file would cost its size several times over (text, chunks, Arrow rows); streaming costs batches
    assert growth_mb < SIZE / 1e6, f"memory grew by {growth_mb:.0f} MB for a {SIZE / 1e6:.0f} MB file"
