"""Merge a training run's LoRA adapter into its base student and save a Hugging Face folder.

The merge runs on the CPU in float32 (exact, and within reach of any machine
that trained the adapter); the merged weights are saved in the base model's
own precision unless ``[export] merge_dtype`` says otherwise. The folder is
built under a temporary name and renamed into place with a ``.complete``
stamp naming the adapter it came from, so a re-run reuses it and an
interrupted merge leaves nothing that looks finished.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from doctune.core.events import CancelToken, Events
from doctune.core.export.errors import ExportError, disk_errors, safetensors_bytes
from doctune.core.fsio import atomic_write_text
from doctune.core.records import RunConfig, RunLayout, RunSummary

COMPLETE = ".complete"
DTYPES = {"float32", "bfloat16", "float16"}


def read_run(run_dir: Path) -> tuple[RunSummary, RunConfig]:
    """The run's summary and configuration; a clear error when the run is not finished."""
    layout = RunLayout(run_dir)
    summary = RunSummary.load_or_none(layout.summary)
    if summary is None or not summary.complete:
        raise ExportError(f"Training run {run_dir.name} has not finished (no complete {layout.summary.name}).",
                          f"Finish it first (doctune train --resume {run_dir.name}) or export another run.")
    config = RunConfig.load_or_none(layout.config) or RunConfig()
    if not (layout.adapter / "adapter_config.json").is_file():
        raise ExportError(f"Training run {run_dir.name} has no adapter (adapter/adapter_config.json is missing).",
                          "Train the run again; its adapter folder was removed or never written.")
    return summary, config


def base_folder(summary: RunSummary, config: RunConfig, offline: bool, events: Events,
                current_student: Any = None) -> Path:
    """The base student the adapter was trained on, as a local folder. Its own code may run only when
    ``current_student`` (the project's [student] settings now) trusts that very student, never because the run's
    files say so."""
    from doctune.core.train import resolve_student, trusted_now

    recorded = summary.student_folder or config.student_folder
    if recorded and (Path(recorded) / "config.json").is_file():  # the Hugging Face folder's own config
        return Path(recorded)
    name = summary.base_model or config.student.get("model") or ""
    revision = str(config.student.get("revision") or "")
    trusted = current_student is not None and trusted_now(name, revision, current_student)
    return resolve_student(name, revision=revision, offline=offline, trust_remote_code=trusted, events=events)


def adapter_fingerprint(adapter_dir: Path, base_dir: Path) -> str:
    digest = hashlib.sha256(str(base_dir.resolve()).encode())
    for file in sorted(adapter_dir.glob("adapter_*")):
        stat = file.stat()
        digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _saved_dtype(base_dir: Path, merge_dtype: str) -> str:
    if merge_dtype in DTYPES:
        return merge_dtype
    config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    declared = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    return declared if declared in DTYPES else "float32"


def _merged_bytes(base_dir: Path, dtype: str) -> int:
    """About what the merged folder takes: the base's weights, at the precision they are saved in."""
    declared = _saved_dtype(base_dir, "auto")
    width = {"float32": 4, "bfloat16": 2, "float16": 2}
    return safetensors_bytes(base_dir, width[dtype] / width.get(declared, 4)) + (4 << 20)


def merge_run(run_dir: Path, out_dir: Path, *, merge_dtype: str = "auto", offline: bool = False,
              events: Events | None = None, cancel: CancelToken | None = None, base_dir: Path | None = None) -> Path:
    """Save the merged model of ``run_dir`` into ``out_dir`` (reused when already merged from the same adapter).

    ``base_dir``: the base student's folder when the caller has already located it (``base_folder``).
    """
    events = (events or Events()).child("export.merge")
    cancel = cancel or CancelToken()
    if base_dir is None:
        base_dir = base_folder(*read_run(run_dir), offline, events)
    adapter_dir = RunLayout(run_dir).adapter
    fingerprint = adapter_fingerprint(adapter_dir, base_dir)
    if (out_dir / COMPLETE).is_file() and (out_dir / COMPLETE).read_text(encoding="utf-8") == fingerprint:
        events.log(f"Merged model of {run_dir.name} already saved; reused")
        return out_dir
    tracker = events.tracker(3, unit="phases")
    tracker.update(0, message=f"loading {base_dir.name} and the adapter", force=True)
    model, tokenizer = _merged_model(base_dir, adapter_dir)
    cancel.raise_if_cancelled()
    tracker.update(1, message="merged the adapter into the weights")
    dtype = _saved_dtype(base_dir, merge_dtype)
    tmp = out_dir.parent / f".{out_dir.name}.tmp"
    with disk_errors("merged model", out_dir.parent, need_bytes=lambda: _merged_bytes(base_dir, dtype)):
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            _save(model, tokenizer, base_dir, tmp, dtype)
            cancel.raise_if_cancelled()
            atomic_write_text(tmp / COMPLETE, fingerprint)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # a half-saved folder gives its space back
            raise
        shutil.rmtree(out_dir, ignore_errors=True)
        tmp.rename(out_dir)
    size = sum(f.stat().st_size for f in out_dir.glob("*.safetensors"))
    tracker.update(3, message=f"saved {out_dir.name} ({dtype}, {size / 1e6:.1f} MB)", bytes=size)
    return out_dir


def _merged_model(base_dir: Path, adapter_dir: Path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(base_dir)
        model = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    except Exception as exc:  # damaged files surface as many library-specific error types
        raise ExportError(f"Could not merge the adapter in {adapter_dir} into {base_dir.name}: {exc}",
                          "The adapter or base weights are damaged or do not belong together; "
                          "train the run again.") from None
    _keep_untied_output(model)
    return model, tokenizer


def _keep_untied_output(model) -> None:
    """A merge that changed only one of tied embedding/output weights must save both."""
    import torch

    embed, output = model.get_input_embeddings(), model.get_output_embeddings()
    if output is None or embed.weight is output.weight:
        return
    if getattr(model.config, "tie_word_embeddings", False) and not torch.equal(embed.weight, output.weight):
        model.config.tie_word_embeddings = False


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "added_tokens.json", "chat_template.jinja", "chat_template.json", "vocab.json", "merges.txt")


def copy_tokenizer_files(base_dir: Path, folder: Path) -> list[str]:
    """Copy the base's tokenizer files into ``folder`` byte for byte; the names copied.

    A merge does not change the tokenizer, and re-saving it through transformers
    is not neutral: for a SentencePiece ``LlamaTokenizer`` it drops ``"legacy": true``
    and rewrites tokenizer.json's normalizer, so ``<s>[INST]`` would tokenize
    differently from the base the adapter was trained on.
    """
    copied = []
    for name in TOKENIZER_FILES:
        if (base_dir / name).is_file():
            shutil.copyfile(base_dir / name, folder / name)
            copied.append(name)
    return copied if "tokenizer.json" in copied or "tokenizer.model" in copied else []


def _save(model, tokenizer, base_dir: Path, folder: Path, dtype: str) -> None:
    import torch
    from transformers import GenerationConfig

    model.to(getattr(torch, dtype)).save_pretrained(folder, safe_serialization=True)
    if not copy_tokenizer_files(base_dir, folder):
        tokenizer.save_pretrained(folder)
    try:
        GenerationConfig.from_pretrained(base_dir).save_pretrained(folder)
    except OSError:
        pass  # the base has no generation config; the model config's token ids apply
