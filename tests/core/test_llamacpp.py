"""Every GGUF is opened through one function that adapts llama.cpp to this processor."""
from __future__ import annotations

import numpy as np
import pytest

from doctune.core import llamacpp
from doctune.core.isolation import run_isolated

AMX_INFO = "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | REPACK = 1 |"
PLAIN_INFO = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | REPACK = 1 |"
PROBE = "The archive holds 1,204 letters written between 1871 and 1903, catalogued by the Quintrel Foundry."


def test_extra_buffers_are_off_only_where_the_processor_has_amx():
    assert llamacpp.extra_buffers_allowed(AMX_INFO, environ={}) is False
    assert llamacpp.extra_buffers_allowed(PLAIN_INFO, environ={}) is True
    assert llamacpp.extra_buffers_allowed(PLAIN_INFO, environ={llamacpp.EXTRA_BUFFERS_ENV: "0"}) is False
    assert llamacpp.extra_buffers_allowed(AMX_INFO, environ={llamacpp.EXTRA_BUFFERS_ENV: "1"}) is True
    assert "AVX" in llamacpp.system_info()  # llama.cpp's own report of this machine


def test_load_llama_applies_the_machine_setting(tiny_gguf, monkeypatch):
    path = tiny_gguf("qwen2", "q8_0")
    for forced, expected in (("0", False), ("1", True)):
        monkeypatch.setenv(llamacpp.EXTRA_BUFFERS_ENV, forced)
        llm = llamacpp.load_llama(path, n_ctx=128)
        try:
            assert llm.model_params.use_extra_bufts is expected
        finally:
            llm.close()
    import llama_cpp.llama_cpp as native

    assert native.llama_model_default_params().use_extra_bufts is True  # the library's defaults are left as they were


def probe_logits(path) -> list[list[float]]:
    """Logits of every position of the probe text, from the product's own loader (run in a child)."""
    llm = llamacpp.load_llama(path, n_ctx=256, logits_all=True, seed=0)
    try:
        ids = llm.tokenize(PROBE.encode(), add_bos=True)
        llm.eval(ids)
        return np.asarray(llm.scores[: len(ids)]).tolist()
    finally:
        llm.close()


@pytest.mark.parametrize("fmt, max_diff, min_agreement", [("q8_0", 0.2, 0.8), ("q4_k_m", 1.0, 0.5)])
def test_quantized_files_evaluate_and_agree_with_f16(tiny_gguf, fmt, max_diff, min_agreement):
    """The crash this guards against killed the process evaluating a Q8_0 file; here it would be a ChildCrashed."""
    reference = np.asarray(run_isolated(probe_logits, tiny_gguf("qwen2", "f16"), label="f16", doing="evaluating"))
    quantized = np.asarray(run_isolated(probe_logits, tiny_gguf("qwen2", fmt), label=fmt, doing="evaluating"))
    assert quantized.shape == reference.shape and np.isfinite(quantized).all()
    assert np.abs(quantized - reference).max() < max_diff
    assert np.corrcoef(quantized.ravel(), reference.ravel())[0, 1] > 0.98
    assert (quantized.argmax(-1) == reference.argmax(-1)).mean() >= min_agreement  # a random model has near-ties
