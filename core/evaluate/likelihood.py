"""Option log-likelihood on a llama.cpp model: how likely each option's text is as the answer.

The prompt (the chat up to the assistant's turn, with retrieved context for a
RAG system) is evaluated once; then each option's tokens are fed one at a time
from that point, adding the log-probability the model gave each token. Reading
only the last position's logits keeps memory at one vocabulary row, so this
works on any ``llama_cpp.Llama`` — no ``logits_all`` context of
``n_ctx × n_vocab`` floats is needed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class OptionLikelihood:
    logprob: float  # sum over the option's tokens
    tokens: int


def _last_logprobs(llama) -> np.ndarray:
    import llama_cpp

    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llama.ctx, -1), shape=(llama.n_vocab(),))
    shifted = logits.astype(np.float64) - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


def option_likelihoods(llama, prompt_tokens: Sequence[int], options_tokens: Sequence[Sequence[int]]) -> list[OptionLikelihood]:
    """Sum of log P(option token | prompt, earlier option tokens) for each option.

    ``prompt_tokens`` must end where the answer starts (after the chat
    template's generation prompt); options are tokenized without BOS.
    """
    if not prompt_tokens:
        raise ValueError("the prompt has no tokens")
    llama.reset()
    llama.eval(list(prompt_tokens))
    first = _last_logprobs(llama)
    results = []
    for tokens in options_tokens:
        if not tokens:
            results.append(OptionLikelihood(float("-inf"), 0))
            continue
        llama.n_tokens = len(prompt_tokens)  # rewind to the end of the prompt (eval drops the KV cells after it)
        total, logprobs = 0.0, first
        for index, token in enumerate(tokens):
            total += float(logprobs[token])
            if index + 1 < len(tokens):
                llama.eval([token])
                logprobs = _last_logprobs(llama)
        results.append(OptionLikelihood(total, len(tokens)))
    return results


def option_logprobs_for_text(llama, prompt_text: str, options: Sequence[str]) -> list[OptionLikelihood]:
    """``option_likelihoods`` from text: the prompt with its special tokens parsed, the options as plain text."""
    prompt_tokens = llama.tokenize(prompt_text.encode("utf-8"), add_bos=True, special=True)
    options_tokens = [llama.tokenize(option.encode("utf-8"), add_bos=False, special=False) for option in options]
    return option_likelihoods(llama, prompt_tokens, options_tokens)
