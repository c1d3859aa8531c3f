"""Ollama Modelfile and the exact commands to use an exported GGUF.

Ollama templates are Go templates, so the Jinja chat template cannot be
copied; instead the template's style is recognised by rendering a probe
conversation with it (ChatML, Llama 3, Mistral [INST]) and the matching Go
template is written, with the end-of-turn markers as stop parameters. A
default system prompt the Jinja template inserts is carried over as SYSTEM.
An unrecognised style gets no TEMPLATE line (Ollama then reads the template
embedded in the GGUF) and the usage text says so.

Nothing the model folder or the project supplies (a file name, a default
system prompt, an end-of-sequence token) can start a Modelfile line of its
own: a value that could end its quotes is left out, and every shell line of
the usage text quotes its arguments.
"""
from __future__ import annotations

import shlex
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


class UnsafeModelfileValue(ValueError):
    """A value that cannot be written into a Modelfile without changing its lines."""


def _line_value(value: str) -> str | None:
    """``value`` as one quoted Modelfile value ("…"), or None when a quote or line break could end it early."""
    if not value or any(char in value for char in '"\\\r\n'):
        return None
    return f'"{value}"'


def _block_value(value: str) -> str | None:
    """``value`` as a triple-quoted Modelfile value (\"\"\"…\"\"\"), or None when it could close the quotes itself."""
    if not value or '"""' in value or value.endswith('"') or "\\" in value:
        return None
    return f'"""{value}"""'


def _path_value(path: Path) -> str | None:
    """A file path as a Modelfile value (the rest of its line), or None when it would break the line."""
    text = str(path)
    return text if text and text == text.strip() and not text.startswith('"') and \
        not any(char in text for char in "\r\n") else None


def _from_line(gguf_file: str) -> str:
    plain = gguf_file.replace("-", "").replace("_", "").replace(".", "")
    if plain.isascii() and plain.isalnum() and not gguf_file.startswith("."):
        return f"FROM ./{gguf_file}"
    raise UnsafeModelfileValue(f"the model file name {gguf_file!r} cannot be written into a Modelfile safely")


def modelfile_text(gguf_file: str, model_dir: Path) -> tuple[str, str | None]:
    """The Modelfile for ``gguf_file`` (a file name beside the Modelfile) and the recognised style."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    style = template_style(tokenizer)
    lines = [_from_line(gguf_file), ""]
    if style:
        _, template, stops = STYLES[style]
        eos = tokenizer.eos_token
        lines.append(f'TEMPLATE """{template}"""')
        system = _block_value(default_system(tokenizer, style) or "")
        if system:
            lines.append(f"SYSTEM {system}")
        for stop in dict.fromkeys(stops + ([eos] if eos else [])):
            if (quoted := _line_value(stop)) is not None:
                lines.append(f"PARAMETER stop {quoted}")
    lines += ["PARAMETER temperature 0.2", ""]
    return "\n".join(lines), style


def usage_text(name: str, export_dir: Path, gguf_path: Path | None, style: str | None,
               lora: tuple[Path, Path] | None = None) -> str:
    """The commands to use the exported model file and, when ``lora`` is given, the (adapter, base GGUF) pair."""
    parts = [_model_usage(name, export_dir, gguf_path, style)] if gguf_path is not None else []
    if lora is not None:
        parts.append(_adapter_usage(*lora))
    return "\n".join(parts)


def _q(path: Path | str) -> str:
    """One shell argument, quoted so no character of it is read by the shell."""
    return shlex.quote(str(path))


def _model_usage(name: str, export_dir: Path, gguf_path: Path, style: str | None) -> str:
    modelfile = export_dir / "Modelfile"
    note = "" if style else ("\n(The chat template's style was not recognised, so the Modelfile has no TEMPLATE; "
                             "Ollama uses the template embedded in the GGUF.)")
    return f"""Your model is ready: {gguf_path}

llama.cpp
  llama-cli -m {_q(gguf_path)} -cnv
  llama-server -m {_q(gguf_path)} --port 8080      (OpenAI-compatible API on http://127.0.0.1:8080/v1)

Ollama
  ollama create {_q(name)} -f {_q(modelfile)}
  ollama run {_q(name)}{note}

LM Studio
  lms import {_q(gguf_path)}
  (or copy the file into ~/.lmstudio/models/doctune/{name}/ and pick it in the model list)

Python (llama-cpp-python)
  from llama_cpp import Llama
  llm = Llama(model_path={str(gguf_path)!r})
  llm.create_chat_completion(messages=[{{"role": "user", "content": "..."}}])
"""


def _adapter_usage(adapter: Path, base: Path) -> str:
    ollama = (f"  FROM {_path_value(base)}\n  ADAPTER {_path_value(adapter)}"
              if _path_value(base) and _path_value(adapter)
              else "  (a file path holds a line break or starts with a quote; move the files to a plain folder first)")
    return f"""Your LoRA adapter is ready: {adapter}
It applies to the base model's GGUF when loaded (verified on {base}).

llama.cpp
  llama-cli -m {_q(base)} --lora {_q(adapter)} -cnv

Python (llama-cpp-python)
  from llama_cpp import Llama
  llm = Llama(model_path={str(base)!r}, lora_path={str(adapter)!r})

Ollama (a Modelfile with these two lines, plus the TEMPLATE and PARAMETER lines of the Modelfile
written beside a full model file)
{ollama}
"""
