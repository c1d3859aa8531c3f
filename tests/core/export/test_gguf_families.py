"""Each tiny family → F16 GGUF → llama.cpp loads it and agrees with transformers."""
from __future__ import annotations

import numpy as np
import pytest

from doctune.core.tiny import FAMILIES

PROBES = [
    "The Quintrel Foundry cast its first bell in 1871, said Oswin Tarrabeck.",
    "Lanternfall festival: 3 nights, 40 lanterns — and don't forget the pudding!\n\nNext line.",
]


def _llama(path):
    from doctune.core.llamacpp import load_llama

    return load_llama(path, n_ctx=256, n_threads=2, logits_all=True, seed=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_f16_matches_transformers(family, tiny_model, tiny_gguf):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = tiny_model(family)
    llm = _llama(tiny_gguf(family, "f16"))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    agree, total = 0, 0
    for text in PROBES:
        ids = tokenizer.encode(text)
        assert llm.tokenize(text.encode(), add_bos=True, special=True) == ids
        llm.reset()
        llm.eval(ids)
        ours = np.asarray(llm.scores[: len(ids)])
        with torch.no_grad():
            theirs = model(torch.tensor([ids])).logits[0].numpy()
        assert np.abs(ours - theirs).max() < 0.05
        agree += int((ours.argmax(-1) == theirs.argmax(-1)).sum())
        total += len(ids)
    assert agree / total >= 0.99


@pytest.mark.parametrize("fmt", ["q8_0", "q4_k_m"])
def test_quantized_loads_and_generates(fmt, tiny_gguf):
    f16, quantized = tiny_gguf("llama", "f16"), tiny_gguf("llama", fmt)
    assert quantized.stat().st_size < f16.stat().st_size
    llm = _llama(quantized)
    out = llm.create_completion("The festival", max_tokens=8, temperature=0.0)
    assert out["usage"]["completion_tokens"] >= 1
