"""From a Hugging Face folder to verified GGUF files with a manifest.

``export_folder`` writes the F16 file, quantizes it to each requested format
in process, verifies every file against the folder's transformers model and
keeps the manifest (``ExportManifest``) up to date: a file is listed ``"ready": true`` only
after it is complete on disk and has passed verification. The manifest is
rewritten atomically after each file, so an interrupted export leaves earlier
verified files ready and nothing else; re-running skips files already ready
for the same source.

The format ``lora`` is the training run's adapter as a GGUF LoRA adapter
(``LoraSource``): it is verified applied to the base model's F16 GGUF,
against the same merged transformers model as the full files.
"""
from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doctune.core.config import ExportSettings
from doctune.core.events import Cancelled, CancelToken, Events
from doctune.core.export.errors import VerificationError
from doctune.core.export.gguf import safetensors_files, write_gguf
from doctune.core.export.lora_gguf import write_lora_gguf
from doctune.core.export.quantize import quantize_gguf
from doctune.core.export.verify import Reference, build_reference, summary_text, verify_gguf
from doctune.core.fsio import atomic_write_text
from doctune.core.gguf_files import LORA, normalise_format
from doctune.core.records import ExportedFile, ExportLayout, ExportManifest, VerificationReport
from doctune.core.runs import load_manifest, read_manifest, ready_file, ready_in  # noqa: F401 — public here too (readers shared with the window)


@dataclass
class LoraSource:
    """A LoRA adapter to write as the ``lora`` file, and the base model it applies to."""

    adapter_dir: Path
    base_dir: Path  # the base model's Hugging Face folder
    base_f16: Callable[[], Path]  # the base model's verified F16 GGUF, exported on first call


def source_fingerprint(model_dir: Path) -> str:
    """Changes when the folder's config, tokenizer or weights change."""
    digest = hashlib.sha256()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        file = model_dir / name
        if file.is_file():
            digest.update(file.read_bytes())
    for file in safetensors_files(model_dir):
        stat = file.stat()
        digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def gguf_name(stem: str, fmt: str) -> str:
    return f"{stem}-{fmt}.gguf"


def min_top1_for(settings: ExportSettings, fmt: str) -> float:
    if fmt == LORA and LORA not in settings.min_top1:
        fmt = "f16"  # the adapter is checked on the F16 base: it must agree as well as the F16 file
    return settings.min_top1.get(fmt, settings.min_top1.get("default", 0.4))


class _Manifest:
    """The manifest being built; every change is written atomically at once."""

    def __init__(self, out_dir: Path, source: Path, fingerprint: str, formats: list[str], extra: dict[str, Any]):
        self.path = ExportLayout(out_dir).manifest
        previous = load_manifest(out_dir)
        kept = previous.files if previous and previous.source_fingerprint == fingerprint else {}
        self.data = ExportManifest.model_validate({
            "source": str(source), "source_fingerprint": fingerprint, **extra, "formats": formats,
            "started_at": time.time(), "finished_at": None,
            "files": {fmt: entry for fmt, entry in kept.items() if entry.ready},
        })
        self.save()

    def save(self) -> None:
        self.data.save(self.path)

    def set(self, fmt: str, entry: dict[str, Any]) -> None:
        self.data.files[fmt] = ExportedFile.model_validate(entry)
        self.save()


def export_folder(
    model_dir: Path,
    out_dir: Path,
    formats: list[str],
    *,
    stem: str,
    settings: ExportSettings,
    events: Events,
    cancel: CancelToken,
    extra: dict[str, Any] | None = None,
    lora: LoraSource | None = None,
) -> ExportManifest:
    """Write, quantize and verify ``formats`` of ``model_dir`` into ``out_dir``; return the manifest.

    ``lora`` in ``formats`` (with ``lora`` given) also writes and verifies the
    adapter that ``model_dir`` was merged from. One export at a time per folder
    (a lock file): a second process asking for the same files waits, then finds
    them ready instead of writing them again.
    """
    from filelock import FileLock

    formats = list(dict.fromkeys(f if f == LORA and lora else normalise_format(f) for f in formats))
    out_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(out_dir / ".export.lock"):
        return _export_locked(model_dir, out_dir, formats, stem, settings, events, cancel, extra, lora)


def _export_locked(model_dir: Path, out_dir: Path, formats: list[str], stem: str, settings: ExportSettings,
                   events: Events, cancel: CancelToken, extra: dict[str, Any] | None,
                   lora: LoraSource | None) -> ExportManifest:
    fingerprint = source_fingerprint(model_dir)
    manifest = _Manifest(out_dir, model_dir, fingerprint, formats, extra or {})
    ready = ready_in(out_dir, manifest.data)
    todo = [fmt for fmt in formats if fmt not in ready]
    for fmt in formats:
        if fmt not in todo:
            events.log(f"{gguf_name(stem, fmt)} is already exported and verified; kept")
    reports = [manifest.data.files[fmt].verification or {} for fmt in formats if fmt not in todo]
    if todo:
        reference = build_reference(model_dir, settings.answer_budget, events.child("export.verify"))
        f16 = out_dir / gguf_name(stem, "f16")
        if any(fmt != LORA for fmt in todo):
            _ensure_f16(model_dir, f16, fingerprint, settings, events, cancel)
        for fmt in todo:
            cancel.raise_if_cancelled()
            try:
                if fmt == LORA:
                    assert lora is not None
                    entry = _export_lora(lora, out_dir / gguf_name(stem, LORA), reference, settings, events, cancel)
                else:
                    path = f16 if fmt == "f16" else _quantize(f16, out_dir / gguf_name(stem, fmt), fmt, events)
                    report = _verify(path, reference, fmt, settings, events, cancel)
                    entry = {"file": path.name, "bytes": path.stat().st_size, "ready": report["passed"],
                             "verification": report}
            except Cancelled:
                raise
            except Exception as exc:  # recorded, so the window can say after a restart why this file is missing
                manifest.set(fmt, {"file": gguf_name(stem, fmt), "ready": False,
                                   "error": getattr(exc, "summary", None) or str(exc) or type(exc).__name__})
                raise
            reports.append(entry["verification"])
            manifest.set(fmt, entry)
        if "f16" not in manifest.data.files:  # an F16 file listed ready by an earlier export stays
            f16.unlink(missing_ok=True)
            f16.with_suffix(".source").unlink(missing_ok=True)
    reports.sort(key=lambda r: formats.index(r["format"]))
    layout = ExportLayout(out_dir)
    VerificationReport(files=reports).save(layout.verification)
    atomic_write_text(layout.verification_text, summary_text(reports))
    manifest.data.finished_at = time.time()
    manifest.save()
    return manifest.data


def _ensure_f16(model_dir: Path, f16: Path, fingerprint: str, settings: ExportSettings, events: Events,
                cancel: CancelToken) -> None:
    """Write the F16 file unless one from the same source is already complete beside its stamp."""
    stamp = f16.with_suffix(".source")
    if f16.is_file() and stamp.is_file() and stamp.read_text(encoding="utf-8") == fingerprint:
        return
    started = time.monotonic()
    write_gguf(model_dir, f16, events=events, cancel=cancel, fallback_pre=settings.pretokenizer_fallback or None)
    atomic_write_text(stamp, fingerprint)
    events.child("export.write").log(f"Wrote {f16.name} ({f16.stat().st_size / 1e6:.1f} MB) in "
                                     f"{time.monotonic() - started:.1f} s", bytes=f16.stat().st_size)


def _quantize(f16: Path, out: Path, fmt: str, events: Events) -> Path:
    stage = events.child("export.quantize")
    stage.progress(0, 1, message=f"quantizing to {fmt}", unit="files", bytes_in=f16.stat().st_size)
    started = time.monotonic()
    quantize_gguf(f16, out, fmt)
    stage.progress(1, 1, message=f"{out.name} ({out.stat().st_size / 1e6:.1f} MB) in {time.monotonic() - started:.1f} s",
                   unit="files", bytes=out.stat().st_size)
    return out


def _export_lora(lora: LoraSource, out: Path, reference: Reference, settings: ExportSettings, events: Events,
                 cancel: CancelToken) -> dict[str, Any]:
    """Write the adapter, then verify it applied to the base F16 GGUF; the manifest entry."""
    base = lora.base_f16()
    started = time.monotonic()
    write_lora_gguf(lora.adapter_dir, lora.base_dir, out, events=events, cancel=cancel)
    events.child("export.write").log(f"Wrote {out.name} ({out.stat().st_size / 1e6:.1f} MB) in "
                                     f"{time.monotonic() - started:.1f} s", bytes=out.stat().st_size)
    report = _verify(base, reference, LORA, settings, events, cancel, lora_path=out)
    report["base_gguf"] = str(base)
    return {"file": out.name, "bytes": out.stat().st_size, "ready": report["passed"],
            "base_gguf": os.path.relpath(base, out.parent),  # relative: the project folder may be moved
            "verification": report}


def _verify(path: Path, reference: Reference, fmt: str, settings: ExportSettings, events: Events,
            cancel: CancelToken, lora_path: Path | None = None) -> dict[str, Any]:
    report = verify_gguf(path, reference, fmt, min_top1_for(settings, fmt), settings.answer_budget,
                         events.child("export.verify"), cancel, lora_path=lora_path)
    checked = lora_path or path
    report["file"] = checked.name
    if not report["passed"]:
        events.error(f"{checked.name} failed verification and is not marked ready: " + "; ".join(report["problems"]),
                     path=str(checked))
    return report


def require_ready(manifest: ExportManifest, out_dir: Path, fmt: str) -> Path:
    path = ready_in(out_dir, manifest).get(fmt)
    if path is None:
        entry = manifest.files.get(fmt)
        problems = ((entry.verification if entry else None) or {}).get("problems", [])
        raise VerificationError(f"The {fmt} GGUF in {out_dir} did not pass verification"
                          + (f": {'; '.join(problems)}" if problems else "."),
                          f"See {ExportLayout(out_dir).verification_text}.")
    return path
