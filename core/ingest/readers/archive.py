"""DOCX and EPUB files are zip archives: checked before a reader inflates them.

A zip bomb (1 MB that inflates to gigabytes) is refused from the sizes the
archive declares: Python's ``zipfile`` never inflates a member past its
declared size (more data fails its CRC check), so the declared sizes bound
what a reader can be made to hold. A file that is not a zip archive, or whose
archive is damaged, is refused in plain words too.
"""
from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from doctune.core.ingest.blocks import ReadFailure

MAX_TOTAL_BYTES = 512 * 1024 * 1024  # everything inflated
MAX_MEMBER_BYTES = 256 * 1024 * 1024  # one member inflated
MAX_RATIO = 200  # inflated ÷ compressed, for members above RATIO_FLOOR_BYTES
RATIO_FLOOR_BYTES = 1024 * 1024
MAX_MEMBERS = 50_000

KIND_NAMES = {"docx": "Word document (.docx)", "epub": "e-book (.epub)"}
RESAVE = {"docx": "open it in Word or LibreOffice and save it again as .docx, then add that copy",
          "epub": "open it in an e-book editor (e.g. Calibre) and save it again, then add that copy"}


def _mb(size: int) -> str:
    return f"{size / 1e6:,.0f} MB" if size >= 1e6 else f"{size / 1e3:,.0f} KB"


def check_archive(path: Path, kind: str) -> None:
    """Refuse ``path`` unless it is a zip archive of sane inflated size (``kind``: docx or epub)."""
    name, resave = KIND_NAMES[kind], RESAVE[kind]
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError):
        raise ReadFailure(f"the file is not a valid {name}: it is not a zip package (or the package is damaged)",
                          f"check that it opens in its usual program; {resave}") from None
    if len(members) > MAX_MEMBERS:
        raise ReadFailure(f"the {name} holds {len(members):,} parts, more than DocTune reads ({MAX_MEMBERS:,}); "
                          "refused as a possible zip bomb", resave)
    total = sum(member.file_size for member in members)
    if total > MAX_TOTAL_BYTES:
        raise ReadFailure(f"the {name} would inflate to {_mb(total)} (the limit is {_mb(MAX_TOTAL_BYTES)}); "
                          "refused as a possible zip bomb", f"if it is a genuine document, {resave}")
    for member in members:
        if member.file_size > MAX_MEMBER_BYTES:
            raise ReadFailure(f"the part {member.filename} of the {name} would inflate to {_mb(member.file_size)} "
                              f"(the limit is {_mb(MAX_MEMBER_BYTES)}); refused as a possible zip bomb",
                              f"if it is a genuine document, {resave}")
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > RATIO_FLOOR_BYTES and ratio > MAX_RATIO:
            raise ReadFailure(f"the part {member.filename} of the {name} inflates {ratio:,.0f} times "
                              f"({_mb(member.compress_size)} to {_mb(member.file_size)}; real documents stay below "
                              f"{MAX_RATIO} times); refused as a possible zip bomb",
                              f"if it is a genuine document, {resave}")


def guarded_blocks(blocks: Iterator, kind: str) -> Iterator:
    """``blocks`` (read lazily) with the errors of a damaged package turned into a ReadFailure as they happen."""
    with damaged_package(kind):
        yield from blocks


@contextmanager
def damaged_package(kind: str) -> Iterator[None]:
    """Errors of a reader library on a damaged package (missing parts, broken or hostile XML) as a ReadFailure."""
    name, resave = KIND_NAMES[kind], RESAVE[kind]
    try:
        yield
    except (ReadFailure, OSError):
        raise
    except KeyError as exc:
        text = str(exc.args[0] if exc.args else exc)
        named = re.search(r"named '([^']+)'", text)
        raise ReadFailure(f"the {name} is damaged: it lacks the part {named.group(1) if named else text}",
                          f"check that it opens in its usual program; {resave}") from None
    except (MemoryError, RecursionError):
        raise ReadFailure(f"the {name} is too deeply nested or too large to read",
                          f"{resave}; if it still fails, copy its text into a .txt file") from None
    except Exception as exc:  # lxml, zipfile and the readers' own errors on malformed content
        detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise ReadFailure(f"the {name} is damaged or holds content DocTune refuses (such as XML entity "
                          f"definitions): {detail}", f"check that it opens in its usual program; {resave}") from None
