"""Ollama Modelfile and the exact commands to use an exported GGUF.

Ollama templates are Go templates, so the Jinja chat template cannot be
copied; instead the template's style is recognised by rendering a probe
conversation with it (ChatML, Llama 3, Mistral [INST]) and the matching Go
template is written, with the end-of-turn markers as stop parameters. A
default system prompt the Jinja template inserts is carried over as SYSTEM.
An unrecognised style gets no TEMPLATE line (Ollama then reads the template
embedded in the GGUF) and the usage text says so.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

CHATML = (
    "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    "{{- range .Messages }}{{- if ne .Role \"system\" }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
    "{{ end }}{{- end }}"
    "<|im_start|>assistant\n"
)
LLAMA3 = (
    "{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
    "{{- range .Messages }}{{- if ne .Role \"system\" }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
    "{{ .Content }}<|eot_id|>{{ end }}{{- end }}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)
MISTRAL = (
    "{{- range $i, $m := .Messages }}{{- if eq $m.Role \"user\" }}[INST] "
    "{{ if and $.System (eq $i 0) }}{{ $.System }}\n\n{{ end }}{{ $m.Content }}[/INST]"
    "{{- else if eq $m.Role \"assistant\" }} {{ $m.Content }}</s>{{- end }}{{- end }}"
)
STYLES: dict[str, tuple[str, str, list[str]]] = {
    # style: (marker in a rendered conversation, Go template, stop strings)
    "chatml": ("<|im_start|>", CHATML, ["<|im_start|>", "<|im_end|>"]),
    "llama3": ("<|start_header_id|>", LLAMA3, ["<|start_header_id|>", "<|eot_id|>"]),
    "mistral": ("[INST]", MISTRAL, ["[INST]", "</s>"]),
}
SYSTEM_MARKERS = {"chatml": ("<|im_start|>system\n", "<|im_end|>"),
                  "llama3": ("<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>")}


def template_style(tokenizer: Any) -> str | None:
    if not tokenizer.chat_template:
        return None
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                             add_generation_prompt=True)
    return next((style for style, (marker, _, _) in STYLES.items() if marker in rendered), None)


def default_system(tokenizer: Any, style: str) -> str | None:
    """The system prompt the template adds when the conversation has none (Qwen2.5 does)."""
    if style not in SYSTEM_MARKERS:
        return None
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                             add_generation_prompt=True)
    start, end = SYSTEM_MARKERS[style]
    if start not in rendered:
        return None
    return rendered.split(start, 1)[1].split(end, 1)[0]


def modelfile_text(gguf_file: str, model_dir: Path) -> tuple[str, str | None]:
    """The Modelfile for ``gguf_file`` (a path relative to the Modelfile) and the recognised style."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    style = template_style(tokenizer)
    lines = [f"FROM ./{gguf_file}", ""]
    if style:
        _, template, stops = STYLES[style]
        eos = tokenizer.eos_token
        lines.append(f'TEMPLATE """{template}"""')
        system = default_system(tokenizer, style)
        if system:
            lines.append(f'SYSTEM """{system}"""')
        for stop in dict.fromkeys(stops + ([eos] if eos else [])):
            lines.append(f'PARAMETER stop "{stop}"')
    lines += ["PARAMETER temperature 0.2", ""]
    return "\n".join(lines), style


def usage_text(name: str, export_dir: Path, gguf_path: Path | None, style: str | None,
               lora: tuple[Path, Path] | None = None) -> str:
    """The commands to use the exported model file and, when ``lora`` is given, the (adapter, base GGUF) pair."""
    parts = [_model_usage(name, export_dir, gguf_path, style)] if gguf_path is not None else []
    if lora is not None:
        parts.append(_adapter_usage(*lora))
    return "\n".join(parts)


def _model_usage(name: str, export_dir: Path, gguf_path: Path, style: str | None) -> str:
    modelfile = export_dir / "Modelfile"
    note = "" if style else ("\n(The chat template's style was not recognised, so the Modelfile has no TEMPLATE; "
                             "Ollama uses the template embedded in the GGUF.)")
    return f"""Your model is ready: {gguf_path}

llama.cpp
  llama-cli -m "{gguf_path}" -cnv
  llama-server -m "{gguf_path}" --port 8080      (OpenAI-compatible API on http://127.0.0.1:8080/v1)

Ollama
  ollama create {name} -f "{modelfile}"
  ollama run {name}{note}

LM Studio
  lms import "{gguf_path}"
  (or copy the file into ~/.lmstudio/models/doctune/{name}/ and pick it in the model list)

Python (llama-cpp-python)
  from llama_cpp import Llama
  llm = Llama(model_path=r"{gguf_path}")
  llm.create_chat_completion(messages=[{{"role": "user", "content": "..."}}])
"""


def _adapter_usage(adapter: Path, base: Path) -> str:
    return f"""Your LoRA adapter is ready: {adapter}
It applies to the base model's GGUF when loaded (verified on {base}).

llama.cpp
  llama-cli -m "{base}" --lora "{adapter}" -cnv

Python (llama-cpp-python)
  from llama_cpp import Llama
  llm = Llama(model_path=r"{base}", lora_path=r"{adapter}")

Ollama (a Modelfile with these two lines, plus the TEMPLATE and PARAMETER lines of the Modelfile
written beside a full model file)
  FROM {base}
  ADAPTER {adapter}
"""
