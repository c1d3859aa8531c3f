"""Run folders and resumable checkpoints.

A run folder (``core.records.RunLayout``) holds its ``RunConfig`` (every
resolved parameter, data fingerprints, library versions), one ``MetricRecord``
per step, checkpoints (trainable weights, optimizer, scheduler, RNG, and a
``CheckpointStep``), the final LoRA adapter with the tokenizer files, and the
``RunSummary``, written last: "complete" only when the adapter is in place.

A checkpoint is written into a hidden temporary folder and renamed into place
only when complete; the ``CheckpointPointer`` (written atomically) then points
at it. A crash, a full disk or a cancel during the write leaves the previous
checkpoint as the latest valid one.
"""
from __future__ import annotations

import io
import os
import platform
import random
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from doctune.core.errors import disk_errors as write_errors
from doctune.core.records import (
    CheckpointPointer,
    CheckpointStep,
    RecordError,
    RunConfig,
    RunLayout,
    RunSummary,
    checkpoint_step,
)
from doctune.core.runs import RunIdError, latest_complete_run, load_summary, read_summary, run_dir_of  # noqa: F401
from doctune.core.train.errors import TrainError


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


def library_versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    from doctune.core import __version__ as doctune_version

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__, "doctune": doctune_version}


def ensure_writable(folder: Path) -> None:
    """Fail early, in plain words, when the run folder cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise TrainError(f"Cannot write to the run folder {folder}: {exc.strerror or exc}.",
                         "Check the folder's permissions and free disk space.") from None


def disk_errors(what: str, folder: Path, model=None):
    """Turn a failed write (disk full, permissions) into a ``TrainError`` naming the folder (and, with ``model``,
    how much a checkpoint of it needs)."""
    return write_errors(what, folder, TrainError,
                        "Free some disk space (or fix the folder's permissions), then continue with "
                        f"doctune train --resume {folder.name}; the last good checkpoint is kept.",
                        window_hint="Free some disk space (or fix the folder's permissions), then press Resume "
                                    "on the Train page; the last good checkpoint is kept.",
                        need_bytes=(lambda: checkpoint_bytes(model)) if model is not None else None)


def checkpoint_bytes(model) -> int:
    """About what one checkpoint of ``model`` takes: its trainable weights and AdamW's two moments (fp32)."""
    return 3 * 4 * sum(param.numel() for param in model.parameters() if param.requires_grad) + (1 << 20)


# ----- checkpoints --------------------------------------------------------------------

def trainable_state(model) -> dict[str, Any]:
    return {name: param.detach().cpu().contiguous() for name, param in model.named_parameters() if param.requires_grad}


def rng_state() -> dict[str, Any]:
    import torch

    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def save_checkpoint(run_dir: Path, step: int, model, optimizer, scheduler, scaler=None, keep: int = 1) -> Path:
    """Write a complete checkpoint for ``step``, then point the ``CheckpointPointer`` at it."""
    import torch
    from safetensors.torch import save_file

    layout = RunLayout(run_dir)
    root = layout.checkpoints
    root.mkdir(parents=True, exist_ok=True)
    final = root / _step_dir_name(step)
    tmp = root / f".tmp-{_step_dir_name(step)}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
        state = io.BytesIO()  # serialised in memory, written as a plain file: a full disk is an OSError (ENOSPC)
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict() if scaler is not None else None, "rng": rng_state()}, state)
        with open(tmp / "state.pt", "wb") as handle:
            handle.write(state.getbuffer())
            handle.flush()
            os.fsync(handle.fileno())
        CheckpointStep(step=step).save(checkpoint_step(tmp))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        CheckpointPointer(step=step, folder=final.name).save(layout.latest_checkpoint)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(root, keep_newest=keep, current=final)
    return final


def _prune(root: Path, keep_newest: int, current: Path) -> None:
    steps = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in steps[:-keep_newest]:
        if old != current:
            shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint the pointer names, else the newest complete one."""
    layout = RunLayout(run_dir)
    root = layout.checkpoints
    pointer = CheckpointPointer.load_or_none(layout.latest_checkpoint)
    if pointer is not None and checkpoint_step(root / pointer.folder).is_file():
        return root / pointer.folder
    complete = sorted(p for p in root.glob("step-*") if checkpoint_step(p).is_file())
    return complete[-1] if complete else None


def load_checkpoint(folder: Path, model, optimizer, scheduler, scaler=None) -> int:
    """Restore weights, optimizer, scheduler and RNG; return the step reached."""
    import torch
    from safetensors.torch import load_file

    weights = load_file(str(folder / "trainable.safetensors"))
    params = dict(model.named_parameters())
    missing = [name for name in weights if name not in params]
    if missing:
        raise TrainError(f"The checkpoint {folder} does not fit this model (e.g. {missing[0]}).",
                         "Resume with the same student and settings the run started with.")
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))
    state = _training_state(folder / "state.pt")
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    restore_rng(state["rng"])
    return CheckpointStep.load(checkpoint_step(folder)).step


def _training_state(path: Path) -> dict[str, Any]:
    """Optimizer, scheduler, scaler and RNG state from ``path``, unpickled with torch's weights-only loader:
    tensors, numbers, strings and containers only, so a crafted checkpoint cannot run code."""
    import pickle

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainError(f"The checkpoint state {path} cannot be loaded safely ({first}); it holds more than plain "
                         "training state (numbers and tensors), or it is damaged.",
                         "Delete that checkpoint folder to resume from an earlier one, or start a new run with "
                         "'doctune train'.",
                         window_hint="Delete that checkpoint folder to resume from an earlier one, or press Train "
                                     "on the Train page to start a new run.") from None
    if not isinstance(state, dict) or not {"optimizer", "scheduler", "rng"} <= set(state):
        raise TrainError(f"The checkpoint state {path} is not a DocTune training state.",
                         "Delete that checkpoint folder, or start a new run with 'doctune train'.",
                         window_hint="Delete that checkpoint folder, or press Train on the Train page to start a "
                                     "new run.")
    return state


def save_adapter(run_dir: Path, model, tokenizer) -> Path:
    """The final adapter (peft safetensors) with the tokenizer files, renamed into place when complete."""
    final = RunLayout(run_dir).adapter
    tmp = run_dir / f".tmp-adapter-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def write_summary(run_dir: Path, summary: RunSummary) -> None:
    summary.save(RunLayout(run_dir).summary)


def write_run_config(run_dir: Path, config: RunConfig) -> None:
    config.save(RunLayout(run_dir).config)


def resume_dir(project, run_id: str) -> Path:
    """The folder of the run to resume, inside the project's runs/ only."""
    try:
        return run_dir_of(project.runs_dir, run_id)
    except RunIdError as exc:
        raise TrainError(f"Cannot resume: {exc}.", "Pass the name of a folder under runs/ to --resume.") from None


def read_run_config(run_dir: Path) -> RunConfig:
    path = RunLayout(run_dir).config
    try:
        return RunConfig.load(path)
    except FileNotFoundError:
        raise TrainError(f"There is no run {run_dir.name} to resume (no {path}).",
                         "List the runs in the project's runs/ folder; pass one of their names to --resume.") from None
    except RecordError as exc:
        raise TrainError(str(exc)) from None
