"""Export: merged model → GGUF (F16 and quantized) → verified files ready for llama.cpp, Ollama, LM Studio.

Public surface:

- ``gguf.write_gguf(model_dir, out_path, events=)``: F16 GGUF from a Hugging Face folder;
- ``quantize.quantize_gguf(src, dst, fmt)``: in-process llama.cpp quantization;
- ``base_gguf(project, fmt)``: the step that exports the student's base model as a verified GGUF, cached in
  ``cache/base/``; ``find_base_gguf(project, fmt)`` looks it up without making it;
- ``ready_gguf(project, run_id=None, fmt)``: the latest verified tuned file, or None (these two lookups, and
  ``ExportError``, are ``doctune.core.gguf_files``'s, in the models layer, where chat finds them too);
- ``run(ExportParams(project_dir, run_id, formats), events=, cancel=)``: the whole export of a training run
  into ``runs/<id>/export/`` (merged folder, GGUF files, manifest, verification report, Modelfile).
"""
from doctune.core.export.base import base_gguf
from doctune.core.export.errors import ExportError, UnsupportedModelError, VerificationError
from doctune.core.export.step import ExportParams, ExportResult, run
from doctune.core.gguf_files import find_base_gguf, ready_gguf

__all__ = ["base_gguf", "find_base_gguf", "ready_gguf", "run", "ExportParams", "ExportResult", "ExportError",
           "UnsupportedModelError", "VerificationError"]
