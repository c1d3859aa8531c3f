"""Quantizing prints nothing of llama.cpp's own per-tensor log; a failure still says what went wrong."""
from __future__ import annotations

import subprocess
import sys


def test_quantizing_in_a_fresh_process_prints_no_llama_cpp_log(tiny_gguf, tmp_path):
    # A fresh process: there llama-cpp-python's logger is still at its default (print everything), as in
    # `doctune export`, which quantizes before it loads any model.
    source, target = tiny_gguf("qwen2", "f16"), tmp_path / "model-q8_0.gguf"
    script = ("import sys; from doctune.core.export.quantize import quantize_gguf; "
              "quantize_gguf(sys.argv[1], sys.argv[2], 'q8_0')")
    done = subprocess.run([sys.executable, "-c", script, str(source), str(target)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert target.stat().st_size > 0
    assert "llama_model_quantize" not in done.stderr and "converting to q8_0" not in done.stderr, done.stderr[-2000:]
