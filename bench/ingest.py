"""Ingestion speed: a generated 300-page PDF and a large text file through ``doctune add``.

Baseline, measured in the same run: raw ``pypdf`` text extraction of the same
PDF (open + ``extract_text`` of every page). DocTune's time is the ``doctune
add`` command run in this process (modules already imported, as the baseline's
are), on a fresh project each time; the two are run in turns, ``REPEATS``
times each, and the best time of each is kept (the machine may be shared). A cold ``doctune add`` in a child process (interpreter start and imports
included) is reported too. Target: DocTune / raw ≤ 1.3 on the PDF.

Usage: ``python bench/ingest.py`` (no arguments); the last line is JSON.
"""
from __future__ import annotations

import contextlib
import io
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PAGES = 300
TEXT_MB = 20
REPEATS = 7
TARGET_RATIO = 1.3
WORDS = ("harbour guild ledger quay salt grain timber merchant toll bridge fire granite council warehouse ship "
         "mooring fee silver storm chain river market cooper rope weaver customs tide pier lantern").split()


def sentences(rnd: random.Random, count: int) -> str:
    return " ".join(
        " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(6, 16))).capitalize() + "." for _ in range(count)
    )


def make_pdf(path: Path) -> None:
    from fpdf import FPDF

    rnd = random.Random(0)
    pdf = FPDF()
    pdf.set_auto_page_break(False)
    pdf.set_font("Helvetica", size=10)
    for number in range(1, PAGES + 1):
        pdf.add_page()
        pdf.multi_cell(0, 5, "\n\n".join(sentences(rnd, 6) for _ in range(5)))
        pdf.set_xy(10, 285)
        pdf.cell(0, 5, f"Page {number}")
    pdf.output(str(path))


def make_text(path: Path) -> None:
    rnd = random.Random(1)
    block = "\n\n".join(sentences(rnd, rnd.randint(3, 8)) for _ in range(2000)) + "\n\n"
    with open(path, "w", encoding="utf-8") as handle:
        written = 0
        while written < TEXT_MB * 1_000_000:
            handle.write(block)
            written += len(block)


def raw_pypdf_seconds(pdf: Path) -> float:
    from pypdf import PdfReader

    start = time.perf_counter()
    reader = PdfReader(pdf)
    pages = [page.extract_text() for page in reader.pages]
    elapsed = time.perf_counter() - start
    assert len(pages) == PAGES
    return elapsed


def doctune_add_seconds(path: Path, workdir: Path, tag: str) -> float:
    """Time of ``doctune add PATH -p <fresh project>`` run in this process."""
    from doctune.core.cli import main
    from doctune.core.project import Project

    project = Project.create(workdir / f"project-{tag}-{time.monotonic_ns()}")
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["--events", "jsonl", "add", str(path), "-p", str(project.root)])
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"doctune add {path} failed with exit code {code}")
    return elapsed


def cold_cli_seconds(path: Path, workdir: Path) -> float:
    from doctune.core.project import Project

    project = Project.create(workdir / f"project-cold-{time.monotonic_ns()}")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "doctune.core", "--events", "jsonl", "add", str(path), "-p", str(project.root)],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="doctune-bench-ingest-") as folder:
        workdir = Path(folder)
        pdf, text = workdir / "report.pdf", workdir / "large.txt"
        make_pdf(pdf)
        make_text(text)
        warm = workdir / "warm.txt"
        warm.write_text("Warm-up: load the modules once, as the baseline has pypdf loaded.", encoding="utf-8")
        doctune_add_seconds(warm, workdir, "warm")

        raw_runs, doctune_runs = [], []
        for _ in range(REPEATS):  # interleaved, so both see the same machine load
            raw_runs.append(raw_pypdf_seconds(pdf))
            doctune_runs.append(doctune_add_seconds(pdf, workdir, "pdf"))
        raw, doctune_pdf = min(raw_runs), min(doctune_runs)
        doctune_text = min(doctune_add_seconds(text, workdir, "text") for _ in range(2))
        cold = cold_cli_seconds(pdf, workdir)
        text_mb = text.stat().st_size / 1e6
        ratio = doctune_pdf / raw
        print(f"raw pypdf: {PAGES / raw:.1f} pages/s; doctune add: {PAGES / doctune_pdf:.1f} pages/s "
              f"(cold CLI {PAGES / cold:.1f}); text: {text_mb / doctune_text:.2f} MB/s", file=sys.stderr)
        print(json.dumps({
            "bench": "ingest",
            "pdf_pages": PAGES,
            "raw_pypdf_pages_per_s": round(PAGES / raw, 1),
            "doctune_pdf_pages_per_s": round(PAGES / doctune_pdf, 1),
            "doctune_pdf_cold_cli_pages_per_s": round(PAGES / cold, 1),
            "text_mb": round(text_mb, 1),
            "doctune_text_mb_per_s": round(text_mb / doctune_text, 2),
            "ratio_doctune_over_raw": round(ratio, 3),
            "target_ratio": TARGET_RATIO,
            "meets_target": ratio <= TARGET_RATIO,
        }))


if __name__ == "__main__":
    main()
