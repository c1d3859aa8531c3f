"""The mypy baseline only shrinks: more errors in a file fail, fewer ask to record the smaller count."""
from collections import Counter

from typecheck import compare, count_errors, read_baseline, shrunk, write_baseline

REPORT = """\
core/a.py:3: error: Incompatible types in assignment  [assignment]
core/a.py:3: note: See the docs
core/a.py:9:5: error: Missing return statement  [return]
core/b.py:1: error: Name "x" is not defined  [name-defined]
Found 3 errors in 2 files (checked 5 source files)
"""


def test_errors_are_counted_per_file_and_notes_are_not_errors():
    assert count_errors(REPORT) == Counter({"core/a.py": 2, "core/b.py": 1})


def test_a_file_beyond_its_baseline_or_new_with_errors_is_worse():
    worse, better = compare({"core/a.py": 1, "core/c.py": 4}, count_errors(REPORT))
    assert worse == {"core/a.py": (1, 2), "core/b.py": (0, 1)}
    assert better == {"core/c.py": (4, 0)}


def test_shrinking_never_raises_a_count(tmp_path):
    baseline = {"core/a.py": 5, "core/b.py": 0, "core/c.py": 2}
    smaller = shrunk(baseline, Counter({"core/a.py": 3, "core/b.py": 7}))
    assert smaller == {"core/a.py": 3, "core/b.py": 0, "core/c.py": 0}
    path = tmp_path / "baseline.txt"
    write_baseline(smaller, path)
    assert read_baseline(path) == {"core/a.py": 3}
