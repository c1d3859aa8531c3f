"""mypy on ``doctune.core`` against a baseline that may only shrink.

    python tests/typecheck.py            # check: no file may have more errors than tests/mypy-baseline.txt says
    python tests/typecheck.py --shrink   # after fixing errors: record the smaller counts (never raises one)

mypy cannot follow the editable install's import hook (``doctune.core`` is the folder ``core/``), so it is
given a small tree ``build/typecheck/doctune/core`` that links to ``core/`` and reports paths back as
``core/...``. Settings, and the modules held to strict typing, are ``[tool.mypy]`` in pyproject.toml.

The baseline counts errors per file, not lines, so moving code does not disturb it. A file that is not in the
baseline (every new file) must have none. A file with fewer errors than recorded is reported with the command
that records the smaller count (``--shrink``, which never raises one), so the baseline only ever shrinks.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "tests" / "mypy-baseline.txt"
SHADOW = ROOT / "build" / "typecheck"
PACKAGE_FOLDERS = {"core": "doctune.core"}
ERROR_LINE = re.compile(r"^(?P<path>[^:\n]+\.pyi?):\d+(?::\d+)?: error: ")
BASELINE_HEADER = (
    "# mypy errors per file of doctune.core that are tolerated for now (tests/typecheck.py).\n"
    "# It may only shrink: fix errors, then run `python tests/typecheck.py --shrink`. Never raise a count.\n"
)


def shadow_tree() -> Path:
    """``build/typecheck/doctune/<folder>`` for each mapped folder: a link where the system allows one, else a copy."""
    namespace = SHADOW / "doctune"
    namespace.mkdir(parents=True, exist_ok=True)
    for folder in PACKAGE_FOLDERS:
        target, source = namespace / folder, ROOT / folder
        if target.is_symlink() and target.resolve() == source:
            continue
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():
            shutil.rmtree(target)
        try:
            target.symlink_to(source, target_is_directory=True)
        except OSError:  # e.g. Windows without the right to make links
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    return SHADOW


def run_mypy() -> tuple[str, int]:
    """mypy's report with paths as in the repository, and its exit status."""
    base = shadow_tree()
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
               "--cache-dir", str(ROOT / ".mypy_cache"), *[arg for p in PACKAGE_FOLDERS.values() for arg in ("-p", p)]]
    env = {**os.environ, "MYPYPATH": str(base)}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode not in (0, 1):  # 2: mypy itself failed (bad config, crash)
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"mypy could not run (exit status {result.returncode}); see above.")
    report = result.stdout
    for prefix in (base / "doctune", (base / "doctune").relative_to(ROOT)):  # mypy names files as it found them
        report = report.replace(f"{prefix}{os.sep}", "").replace(f"{prefix.as_posix()}/", "")
    return report, result.returncode


def count_errors(report: str) -> Counter[str]:
    """Errors per file (notes are not errors)."""
    return Counter(m["path"].replace("\\", "/") for m in map(ERROR_LINE.match, report.splitlines()) if m)


def read_baseline(path: Path = BASELINE) -> dict[str, int]:
    counts: dict[str, int] = {}
    if not path.exists():
        return counts
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            name, count = line.rsplit(None, 1)
            counts[name] = int(count)
        except ValueError:
            raise SystemExit(f"{path}, line {number}: expected 'FILE COUNT', found {line!r}.") from None
    return counts


def write_baseline(counts: dict[str, int], path: Path = BASELINE) -> None:
    lines = [f"{name} {count}\n" for name, count in sorted(counts.items()) if count > 0]
    path.write_text(BASELINE_HEADER + "".join(lines), encoding="utf-8")


def compare(baseline: dict[str, int], current: Counter[str]) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """(files with more errors than the baseline allows, files with fewer), each as file -> (allowed, found)."""
    worse = {name: (baseline.get(name, 0), found) for name, found in current.items() if found > baseline.get(name, 0)}
    better = {name: (allowed, current.get(name, 0)) for name, allowed in baseline.items()
              if current.get(name, 0) < allowed}
    return worse, better


def shrunk(baseline: dict[str, int], current: Counter[str]) -> dict[str, int]:
    """The baseline with each count lowered to what mypy finds now; no count ever goes up."""
    return {name: min(allowed, current.get(name, 0)) for name, allowed in baseline.items()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shrink", action="store_true", help="record the files whose error counts went down")
    args = parser.parse_args(argv)
    report, _ = run_mypy()
    current, baseline = count_errors(report), read_baseline()
    worse, better = compare(baseline, current)
    if args.shrink:
        smaller = shrunk(baseline, current)
        write_baseline(smaller)
        print(f"{BASELINE.relative_to(ROOT)}: {sum(smaller.values())} errors in {sum(1 for c in smaller.values() if c)} files.")
    if worse:
        for line in report.splitlines():
            if line.split(":", 1)[0].replace("\\", "/") in worse:  # its errors and their notes
                print(line)
        print("\nmypy: more type errors than tests/mypy-baseline.txt allows:")
        for name, (allowed, found) in sorted(worse.items()):
            print(f"  {name}: {found} (allowed {allowed})")
        print("Fix the errors listed above (new code must have none); the baseline may only shrink.")
        return 1
    if better and not args.shrink:
        print("mypy: fewer type errors than tests/mypy-baseline.txt records — well done:")
        for name, (allowed, found) in sorted(better.items()):
            print(f"  {name}: {found} (recorded {allowed})")
        print("Record it so it stays that way: python tests/typecheck.py --shrink")
    print(f"mypy: {sum(current.values())} known errors in {len(current)} files, none beyond the baseline "
          f"({sum(baseline.values())}).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
