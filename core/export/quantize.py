"""Quantize a GGUF in process through llama.cpp's own quantizer."""
from __future__ import annotations

import ctypes
from pathlib import Path

from doctune.core.export.errors import ExportError
from doctune.core.fsio import AtomicFile
from doctune.core.gguf_files import FTYPES, normalise_format
from doctune.core.llamacpp import quiet_llama_logs


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
    with AtomicFile(dst) as tmp, quiet_llama_logs():
        code = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
        if code != 0:
            raise ExportError(f"llama.cpp could not quantize {src.name} to {name} (code {code}).",
                              "Check that the F16 file loads in llama.cpp and that the disk has space.")
    return dst
