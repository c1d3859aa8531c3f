"""Quantize a GGUF in process through llama.cpp's own quantizer."""
from __future__ import annotations

import ctypes
from pathlib import Path

from doctune.core.export.errors import ExportError
from doctune.core.fsio import AtomicFile

# llama.cpp ``llama_ftype`` numbers of the formats DocTune offers.
FTYPES: dict[str, int] = {
    "f16": 1,
    "q8_0": 7,
    "q4_0": 2,
    "q5_0": 8,
    "q5_1": 9,
    "q2_k": 10,
    "q3_k_m": 12,
    "q4_k_s": 14,
    "q4_k_m": 15,
    "q5_k_s": 16,
    "q5_k_m": 17,
    "q6_k": 18,
}


def normalise_format(fmt: str) -> str:
    name = fmt.strip().lower()
    if name not in FTYPES:
        raise ExportError(f"Unknown GGUF format '{fmt}'.", f"Choose from: {', '.join(FTYPES)}.")
    return name


def quantize_gguf(src: str | Path, dst: str | Path, fmt: str, *, threads: int = 0) -> Path:
    """Write ``src`` (an F16 GGUF) quantized to ``fmt`` at ``dst`` (temp file + rename)."""
    import llama_cpp

    name = normalise_format(fmt)
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise ExportError(f"{src} does not exist.", "Write the F16 GGUF first.")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[name]
    params.nthread = threads
    with AtomicFile(dst) as tmp:
        code = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
        if code != 0:
            raise ExportError(f"llama.cpp could not quantize {src.name} to {name} (code {code}).",
                              "Check that the F16 file loads in llama.cpp and that the disk has space.")
    return dst
