"""Which device and precision to train with, decided before any model loads.

auto picks CUDA (bf16 where the GPU supports it, else fp16 with a gradient
scaler), then Apple MPS (fp32; bf16 only where the platform supports it), then
the CPU (fp32). An explicit ``device``/``dtype`` that this machine cannot do is a
``TrainError`` naming the setting.
"""
from __future__ import annotations

from dataclasses import dataclass

from doctune.core.train.errors import TrainError


@dataclass(frozen=True)
class Placement:
    device: str  # "cpu", "cuda", "mps" (with a rank suffix such as "cuda:1" under torchrun)
    dtype: str  # "fp32", "bf16", "fp16"

    @property
    def torch_dtype(self):
        import torch

        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.dtype]

    @property
    def autocast(self) -> bool:
        return self.dtype != "fp32"

    @property
    def needs_grad_scaler(self) -> bool:
        return self.dtype == "fp16"

    @property
    def kind(self) -> str:
        return self.device.split(":")[0]


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _mps_available() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def _mps_supports_bf16() -> bool:
    import torch

    try:
        torch.ones(1, dtype=torch.bfloat16, device="mps")
    except (RuntimeError, TypeError):
        return False
    return True


def _auto_device() -> str:
    if _cuda_available():
        return "cuda"
    if _mps_available():
        return "mps"
    return "cpu"


def _auto_dtype(device: str) -> str:
    if device == "cuda":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def _check_device(device: str) -> None:
    if device == "cuda" and not _cuda_available():
        raise TrainError("device 'cuda' was asked for, but no CUDA GPU is usable here.",
                         "Set [train] device = \"auto\" (or pass --device auto) to train on what this machine has.",
                         window_hint="On the Train page, open Advanced settings and set Device to auto.")
    if device == "mps" and not _mps_available():
        raise TrainError("device 'mps' was asked for, but Apple MPS is not available here.",
                         "Set [train] device = \"auto\" (or pass --device auto).",
                         window_hint="On the Train page, open Advanced settings and set Device to auto.")


def _check_dtype(device: str, dtype: str) -> None:
    if dtype == "fp16" and device != "cuda":
        raise TrainError(f"dtype 'fp16' needs a CUDA GPU; this run trains on {device}.",
                         "Use --dtype fp32 (or auto).")
    if dtype == "bf16" and device == "cuda":
        import torch

        if not torch.cuda.is_bf16_supported():
            raise TrainError("dtype 'bf16' is not supported by this GPU.", "Use --dtype fp16 or auto.")
    if dtype == "bf16" and device == "mps" and not _mps_supports_bf16():
        raise TrainError("dtype 'bf16' is not supported by MPS on this machine.", "Use --dtype fp32 or auto.")


def choose_placement(device: str = "auto", dtype: str = "auto", local_rank: int = 0) -> Placement:
    """Resolve ``auto`` and validate the combination; raises ``TrainError`` if unsupported."""
    chosen = _auto_device() if device == "auto" else device
    _check_device(chosen)
    precision = _auto_dtype(chosen) if dtype == "auto" else dtype
    _check_dtype(chosen, precision)
    if chosen == "cuda":
        return Placement(f"cuda:{local_rank}", precision)
    return Placement(chosen, precision)


def check_qlora(placement: Placement) -> None:
    """QLoRA loads 4-bit weights through bitsandbytes, which needs CUDA."""
    if placement.kind != "cuda":
        raise TrainError(f"QLoRA (4-bit) needs a CUDA GPU; this run trains on {placement.kind}.",
                         "Set [train] qlora = false, or train on a machine with an NVIDIA GPU.",
                         window_hint="QLoRA is set by [train] qlora in the project's doctune.toml (the window has "
                                     "no setting for it): set it to false, or train on a machine with an NVIDIA "
                                     "GPU.")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise TrainError("QLoRA (4-bit) needs the bitsandbytes package, which is not installed.",
                         "pip install bitsandbytes, or set [train] qlora = false.") from None
