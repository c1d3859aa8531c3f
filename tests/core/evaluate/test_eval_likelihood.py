"""Option log-likelihood on a real llama.cpp model (the tiny Qwen2 exported to GGUF)."""
from __future__ import annotations

import numpy as np
import pytest

from doctune.core.evaluate.likelihood import option_likelihoods, option_logprobs_for_text

PROMPT = "<|im_start|>user\nWho first charted the Vellmora Archipelago?<|im_end|>\n<|im_start|>assistant\n"
OPTIONS = ["Marta Hennesey", "Inga Solvard", "Liesel Drummond", "Amalie Corveth"]


@pytest.fixture(scope="module")
def tiny_llama(tiny_model, artifacts_dir):
    from llama_cpp import Llama

    from doctune.core.export.gguf import write_gguf

    folder = tiny_model("qwen2")
    path = artifacts_dir / "eval" / f"{folder.name}.f16.gguf"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_gguf(folder, path)
    return Llama(str(path), n_ctx=256, n_threads=2, verbose=False, logits_all=True)


def full_logits_logprob(llama, prompt_tokens, option_tokens) -> float:
    """The reference: one pass over prompt + option with every position's logits kept."""
    llama.reset()
    llama.eval(prompt_tokens + option_tokens)
    total = 0.0
    for index, token in enumerate(option_tokens):
        row = llama.scores[len(prompt_tokens) + index - 1].astype(np.float64)
        row -= row.max()
        total += row[token] - np.log(np.exp(row).sum())
    return total


def test_option_likelihoods_match_a_full_logits_pass(tiny_llama):
    scored = option_logprobs_for_text(tiny_llama, PROMPT, OPTIONS)
    prompt_tokens = tiny_llama.tokenize(PROMPT.encode(), add_bos=True, special=True)
    for option, result in zip(OPTIONS, scored):
        option_tokens = tiny_llama.tokenize(option.encode(), add_bos=False, special=False)
        assert result.tokens == len(option_tokens)
        assert result.logprob == pytest.approx(full_logits_logprob(tiny_llama, prompt_tokens, option_tokens), abs=1e-3)
        assert result.logprob < 0


def test_scoring_is_repeatable_and_order_free(tiny_llama):
    forward = option_logprobs_for_text(tiny_llama, PROMPT, OPTIONS)
    backward = option_logprobs_for_text(tiny_llama, PROMPT, OPTIONS[::-1])[::-1]
    assert [r.logprob for r in forward] == pytest.approx([r.logprob for r in backward], abs=1e-4)


def test_empty_prompt_is_refused(tiny_llama):
    with pytest.raises(ValueError):
        option_likelihoods(tiny_llama, [], [[1]])
