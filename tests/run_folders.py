"""Run folders as training and export leave them, written directly (for tests of the readers of those files)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path


def finished_run(project, run_id: str, finished_at: float, gguf: Path | None = None, fmt: str = "q8_0") -> Path:
    """A complete run (summary and adapter folder); with ``gguf``, also an export listing that file ready as ``fmt``."""
    run_dir = project.runs_dir / run_id
    (run_dir / "adapter").mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps({"status": "complete", "finished_at": finished_at}))
    if gguf is not None:
        (run_dir / "export").mkdir()
        name = f"model-{fmt}.gguf"
        copy = Path(shutil.copy(gguf, run_dir / "export" / name))
        entry = {"file": name, "bytes": copy.stat().st_size, "ready": True}
        (run_dir / "export" / "manifest.json").write_text(
            json.dumps({"files": {fmt: entry}, "finished_at": finished_at + 1}))
    return run_dir
