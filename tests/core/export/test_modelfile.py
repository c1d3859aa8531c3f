"""The Ollama Modelfile follows the chat template's style, stop tokens and default system prompt."""
from __future__ import annotations

import shutil

from doctune.core.export.modelfile import modelfile_text

QWEN25_STYLE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAMA3_STYLE = (
    "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] }}<|eot_id|>"
    "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def _with_template(tiny_model, tmp_path, template):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model("llama"), folder)
    (folder / "chat_template.jinja").write_text(template)
    return folder


def test_chatml_with_default_system(tiny_model, tmp_path):
    text, style = modelfile_text("m-q8_0.gguf", _with_template(tiny_model, tmp_path, QWEN25_STYLE))
    assert style == "chatml" and text.startswith("FROM ./m-q8_0.gguf")
    assert 'SYSTEM """You are a helpful assistant."""' in text
    assert 'PARAMETER stop "<|im_end|>"' in text


def test_llama3_style(tiny_model, tmp_path):
    text, style = modelfile_text("m.gguf", _with_template(tiny_model, tmp_path, LLAMA3_STYLE))
    assert style == "llama3" and "<|start_header_id|>assistant<|end_header_id|>" in text
    assert 'PARAMETER stop "<|eot_id|>"' in text and "SYSTEM" not in text


def test_unknown_style_has_no_template(tiny_model, tmp_path):
    text, style = modelfile_text("m.gguf", _with_template(tiny_model, tmp_path, "{{ messages[0]['content'] }}"))
    assert style is None and "TEMPLATE" not in text and text.startswith("FROM ./m.gguf")
