"""The one way DocTune opens a GGUF file with llama.cpp, adapted to this machine.

Every place that loads a model (chat, compare, evaluation, export
verification, the LoRA adapter check, the local teacher, benchmarks and tests)
calls :func:`load_llama`, so a fix for one machine is one change here.

The fix in force: on processors with Intel AMX, llama.cpp 0.3.36's AMX buffer
type segfaults in ``ggml_backend_amx_mul_mat`` on every quantized file (Q8_0,
Q4_0, Q4_K_M; upstream ggml-org/llama.cpp#20824) while F16 works. Turning off
llama.cpp's *extra buffer types* (``use_extra_bufts``) avoids it. Those buffer
types are also how llama.cpp repacks quantized weights for faster CPU kernels,
so they are turned off only where the processor reports AMX; elsewhere they
stay on. ``DOCTUNE_LLAMA_EXTRA_BUFFERS=0`` or ``=1`` forces the choice (to test
it, or to work around another machine's fault without a new release).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EXTRA_BUFFERS_ENV = "DOCTUNE_LLAMA_EXTRA_BUFFERS"
AMX_FEATURE = "AMX_INT8 = 1"
_PATCH_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def system_info() -> str:
    """llama.cpp's own line of the CPU features it was built with and found (``AVX2 = 1 | AMX_INT8 = 1 | …``)."""
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip()


def has_amx(info: str | None = None) -> bool:
    """True when llama.cpp reports the AMX int8 unit on this processor."""
    return AMX_FEATURE in (system_info() if info is None else info)


def extra_buffers_allowed(info: str | None = None, environ: dict[str, str] | None = None) -> bool:
    """Whether llama.cpp may use its extra (repacking, AMX) weight buffer types on this machine."""
    forced = (os.environ if environ is None else environ).get(EXTRA_BUFFERS_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return not has_amx(info)


@contextlib.contextmanager
def _model_params(use_extra_bufts: bool) -> Iterator[None]:
    """Make ``Llama`` build its model parameters with ``use_extra_bufts`` as given.

    ``Llama.__init__`` takes no argument for it and loads the model before
    returning, so the defaults it reads are adjusted for the duration of one
    construction (under a lock: loads from several threads see their own value).
    """
    import llama_cpp.llama_cpp as native

    original = native.llama_model_default_params

    def adjusted() -> Any:
        params = original()
        params.use_extra_bufts = use_extra_bufts
        return params

    with _PATCH_LOCK:
        native.llama_model_default_params = adjusted
        try:
            yield
        finally:
            native.llama_model_default_params = original


@contextlib.contextmanager
def quiet_llama_logs() -> Iterator[None]:
    """Only llama.cpp's errors reach stderr meanwhile (its quantizer otherwise prints a line per tensor).

    llama-cpp-python routes llama.cpp's log through one process-wide logger; ``Llama(verbose=False)`` sets it
    for the rest of the process, but a step that quantizes before it loads any model would print everything.
    """
    from llama_cpp._logger import logger

    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def load_llama(path: str | Path, **kwargs: Any) -> Any:
    """``llama_cpp.Llama(path, **kwargs)`` with this machine's settings (quiet unless ``verbose`` is given)."""
    from llama_cpp import Llama

    kwargs.setdefault("verbose", False)
    with _model_params(extra_buffers_allowed()):
        return Llama(str(path), **kwargs)
