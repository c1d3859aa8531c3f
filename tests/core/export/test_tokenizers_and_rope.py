"""Pre-tokenizer detection per real family's split rules, and Llama 3.x rope scaling."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from doctune.core.export.gguf import write_gguf
from doctune.core.export.verify import PROBE_TEXTS

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
BYTES = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
PRE_TOKENIZERS = {
    "llama-bpe": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": False}, BYTES]},
    "smollm": {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, {**BYTES, "use_regex": True}]},
    "gpt-2": {**BYTES, "use_regex": True},
}


def _llama_copy(tiny_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model("llama"), folder)
    return folder


def _edit_json(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("name", sorted(PRE_TOKENIZERS))
def test_pre_tokenizer_is_detected_and_llama_cpp_splits_the_same(name, tiny_model, tmp_path):
    from transformers import AutoTokenizer

    from doctune.core.llamacpp import load_llama

    folder = _llama_copy(tiny_model, tmp_path)
    _edit_json(folder / "tokenizer.json", lambda d: d.update(pre_tokenizer=PRE_TOKENIZERS[name]))
    out = write_gguf(folder, tmp_path / "model.gguf")
    llm = load_llama(out, n_ctx=128, vocab_only=True)
    assert llm.metadata["tokenizer.ggml.pre"] == name
    tokenizer = AutoTokenizer.from_pretrained(folder)
    for text in PROBE_TEXTS + ["Call 555-0123 or 1234567 now, it's 2024!"]:
        assert llm.tokenize(text.encode(), add_bos=True, special=True) == tokenizer.encode(text)


def test_llama3_rope_scaling_matches_transformers(tiny_model, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from doctune.core.llamacpp import load_llama

    folder = _llama_copy(tiny_model, tmp_path)
    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    _edit_json(folder / "config.json", lambda d: d.update(rope_parameters=rope))
    out = write_gguf(folder, tmp_path / "model.gguf")
    llm = load_llama(out, n_ctx=256, logits_all=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = tokenizer.encode(" ".join(PROBE_TEXTS))
    llm.eval(ids)
    ours = np.asarray(llm.scores[: len(ids)])
    with torch.no_grad():
        theirs = model(torch.tensor([ids])).logits[0].numpy()
    assert np.abs(ours - theirs).max() < 0.05
    assert (ours.argmax(-1) == theirs.argmax(-1)).mean() >= 0.99
