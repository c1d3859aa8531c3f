"""Prove that a GGUF file behaves like the Hugging Face model it came from.

Checks, each recorded with its figures in the report:

- tokenizer: llama.cpp tokenizes every probe text exactly as the model's own
  tokenizer does (``reference_encoder``: for SentencePiece-style vocabularies
  tokenizer.json's own pipeline, which transformers 5.24 does not follow);
- top-1 agreement: on every position of the probe prompts, llama.cpp's most
  likely next token equals transformers' (threshold per format);
- chat template: the template embedded in the file renders a conversation
  to the same text as the transformers tokenizer's template;
- end of turn: the file stops on the model's end-of-turn token; when the model
  itself ends its greedy answer within the budget, llama.cpp (through the
  embedded template) must end it within twice the budget (``FILE_ANSWER_SLACK``):
  a quantized file may leave the model's greedy path at a near tie and say a
  little more, while a file that never ends its turn runs on past any budget.

The transformers side is computed once per model (``Reference``) and shared by
every format of an export.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from doctune.core.events import CancelToken, Events

PROBE_TEXTS = [
    "The archive holds 1,204 letters written between 1871 and 1903.",
    "Q: Who built the lighthouse at Grellan Point?\nA: It was designed by a team of engineers.",
    "Prices rose by 3.5% — don't panic! See section 4.2 (appendix B) for details.",
    "  Indented   text\twith tabs,\nnewlines\n\nand ÜNÏCÖDÉ: café, naïve, 東京.",
]
PROBE_CONVERSATION = [
    {"role": "system", "content": "You answer questions about the user's documents."},
    {"role": "user", "content": "What is the Lanternfall festival?"},
    {"role": "assistant", "content": "A harvest festival held over three nights."},
    {"role": "user", "content": "When does it start?"},
]
PROBE_QUESTION = [{"role": "user", "content": "Where is the Quintrel Foundry?"}]
MAX_PROBE_TOKENS = 256
FILE_ANSWER_SLACK = 2  # the file's answer may take this many times the budget (a quantized file's path may differ)


@dataclass
class Reference:
    """What transformers says about the probes; computed once per model folder."""

    token_ids: list[list[int]]
    top1: list[list[int]]
    template_text: str | None
    eos_ids: list[int]
    answer_ids: list[int]
    answer_stops: bool
    texts: list[str] = field(default_factory=list)


def _eos_ids(model_dir: Path, tokenizer: Any) -> list[int]:
    from transformers import GenerationConfig

    ids: list[int] = []
    try:
        eos = GenerationConfig.from_pretrained(model_dir).eos_token_id
        ids = list(eos) if isinstance(eos, (list, tuple)) else ([eos] if eos is not None else [])
    except OSError:
        pass
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def reference_encoder(model_dir: Path, tokenizer: Any) -> Callable[[str, bool], list[int]]:
    """``encode(text, add_special_tokens)`` as the GGUF's tokenizer is meant to reproduce it.

    A SentencePiece-style vocabulary (Llama 2, TinyLlama, Mistral v0.1–0.3) is
    written for llama.cpp's SentencePiece tokenizer, which follows the tokenizer
    file's own pipeline: tokenizer.json's normalizer, pre-tokenizer, model,
    run by the ``tokenizers`` library, as SentencePiece does. transformers 5.24
    rebuilds that pipeline for ``LlamaTokenizer`` and differs from it (no ▁
    prepend before a leading space; without ``"legacy": true``, ``<s>[INST]``
    splits differently), so for these the file is the reference.

    A byte-level BPE vocabulary is written with the pre-tokenizer of the
    tokenizer transformers builds (``vocab.detect_pre_tokenizer``: e.g.
    ``Qwen2Tokenizer``'s split rules for a ``model_type: qwen2`` folder), the one
    training used; that tokenizer is the reference for those. Without a
    tokenizer.json, transformers' tokenizer is the reference.

    Which special tokens frame a text (BOS, EOS) follows transformers, as the GGUF's
    ``add_bos_token``/``add_eos_token`` do (``vocab.build_vocab``): tokenizer_config.json's
    ``add_bos_token`` can override the file's post-processor.
    """
    import json

    from doctune.core.export.vocab import _is_sentencepiece_style

    path = model_dir / "tokenizer.json"
    if not path.is_file():
        return lambda text, special=True: list(tokenizer.encode(text, add_special_tokens=special))
    from tokenizers import Tokenizer

    if not _is_sentencepiece_style(json.loads(path.read_text(encoding="utf-8"))):
        return lambda text, special=True: list(tokenizer.encode(text, add_special_tokens=special))
    own = Tokenizer.from_file(str(path))
    own.no_truncation()
    own.no_padding()
    plain = list(tokenizer.encode("a", add_special_tokens=False))
    full = list(tokenizer.encode("a", add_special_tokens=True))
    start = next((i for i in range(len(full) - len(plain) + 1) if full[i:i + len(plain)] == plain), None)
    if not plain or start is None:
        return lambda text, special=True: own.encode(text, add_special_tokens=special).ids
    prefix, suffix = full[:start], full[start + len(plain):]
    return lambda text, special=True: ((prefix if special else []) + own.encode(text, add_special_tokens=False).ids
                                       + (suffix if special else []))


def build_reference(model_dir: Path, answer_budget: int, events: Events | None = None) -> Reference:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    events = events or Events()
    events.log(f"Computing the reference answers of {model_dir.name} with transformers")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encode = reference_encoder(model_dir, tokenizer)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    template_text = None
    texts = list(PROBE_TEXTS)
    if tokenizer.chat_template:
        template_text = tokenizer.apply_chat_template(PROBE_CONVERSATION, tokenize=False, add_generation_prompt=True)
        texts.append(template_text)
    token_ids = [encode(text, True)[:MAX_PROBE_TOKENS] for text in texts]
    differing = [number for number, (text, ids) in enumerate(zip(texts, token_ids), 1)
                 if list(tokenizer.encode(text))[:MAX_PROBE_TOKENS] != ids]
    if differing:
        events.log(f"transformers' {type(tokenizer).__name__} tokenizes probe {', '.join(map(str, differing))} "
                   f"differently from {model_dir.name}/tokenizer.json's own pipeline; the file's pipeline is the "
                   "reference (llama.cpp and SentencePiece follow it)")
    top1 = []
    with torch.no_grad():
        for ids in token_ids:
            logits = model(torch.tensor([ids])).logits[0]
            top1.append(logits.argmax(-1).tolist())
    eos_ids = _eos_ids(model_dir, tokenizer)
    answer_ids, stops = _greedy_answer(model, tokenizer, encode, eos_ids, answer_budget)
    return Reference(token_ids, top1, template_text, eos_ids, answer_ids, stops, texts)


def _greedy_answer(model: Any, tokenizer: Any, encode: Callable[[str, bool], list[int]], eos_ids: list[int],
                   budget: int) -> tuple[list[int], bool]:
    import torch

    if not tokenizer.chat_template:
        return [], False
    prompt = tokenizer.apply_chat_template(PROBE_QUESTION, tokenize=False, add_generation_prompt=True)
    ids = torch.tensor([encode(prompt, False)])
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=budget, do_sample=False, eos_token_id=eos_ids or None,
                             pad_token_id=tokenizer.pad_token_id or (eos_ids[0] if eos_ids else 0))
    answer = out[0, ids.shape[1]:].tolist()
    return answer, bool(answer) and answer[-1] in eos_ids


def verify_gguf(path: Path, reference: Reference, fmt: str, min_top1: float, answer_budget: int,
                events: Events | None = None, cancel: CancelToken | None = None,
                lora_path: Path | None = None) -> dict[str, Any]:
    """Run every check on ``path`` (with the GGUF LoRA adapter ``lora_path`` applied, if given);
    the result says ``passed`` and why not.

    The checks run in a child process: a file that crashes llama.cpp on this
    computer (a processor-specific fault) fails its verification with that
    reason, and the export goes on with the other formats.
    """
    from doctune.core.isolation import ChildCrashed, run_isolated

    events = events or Events()
    checked = lora_path or path
    try:
        checks = run_isolated(_run_checks, path, reference, min_top1, answer_budget, lora_path,
                              label=checked, doing="evaluating this file", cancel=cancel)
    except ChildCrashed as crash:
        checks = {"crash": {"passed": False, "problem": str(crash), "exit_code": crash.exit_code,
                            "llama_cpp": llama_cpp_description()}}
    problems = [check["problem"] for check in checks.values() if not check["passed"]]
    report = {"format": fmt, "passed": not problems, "problems": problems}
    if "load" not in checks and "crash" not in checks:
        report["checks"] = checks
    else:
        report["crashed"] = "crash" in checks
        if "crash" in checks:
            report["llama_cpp"] = checks["crash"]["llama_cpp"]
    agreement = checks.get("top1", {}).get("agreement")
    events.log(f"{checked.name}: " + ("verified" if not problems else "FAILED — " + "; ".join(problems)),
               top1_agreement=agreement)
    return report


def llama_cpp_description() -> dict[str, Any]:
    """Which llama.cpp, on which processor features, with which loader setting: what a crash report needs."""
    import llama_cpp

    from doctune.core.llamacpp import extra_buffers_allowed, system_info

    return {"version": llama_cpp.__version__, "system_info": system_info(), "extra_buffers": extra_buffers_allowed()}


def _run_checks(path: Path, reference: Reference, min_top1: float, answer_budget: int,
                lora_path: Path | None) -> dict[str, dict[str, Any]]:
    """Every check on one file, in the process that calls it (a child, from ``verify_gguf``)."""
    from doctune.core.llamacpp import load_llama

    try:
        n_ctx = max(512, MAX_PROBE_TOKENS + FILE_ANSWER_SLACK * answer_budget + 64)
        llm = load_llama(path, lora_path=str(lora_path) if lora_path else None, n_ctx=n_ctx, n_threads=None,
                         logits_all=True, seed=0)
    except (ValueError, RuntimeError) as exc:
        return {"load": {"passed": False, "problem": f"llama.cpp cannot load the file ({exc})"}}
    try:
        return {
            "tokenizer": _check_tokenizer(llm, reference),
            "top1": _check_top1(llm, reference, min_top1),
            "chat_template": _check_template(llm, reference),
            "end_of_turn": _check_end_of_turn(llm, reference, answer_budget),
        }
    finally:
        llm.close()


def _check_tokenizer(llm: Any, reference: Reference) -> dict[str, Any]:
    mismatches = []
    for number, (text, expected) in enumerate(zip(reference.texts, reference.token_ids), 1):
        ours = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)[:MAX_PROBE_TOKENS]
        if ours != expected:
            first = next((i for i, (a, b) in enumerate(zip(ours, expected)) if a != b), min(len(ours), len(expected)))
            mismatches.append({"probe": number, "text": text[:80], "first_difference_at": first,
                               "llama_cpp": _pieces(llm, ours[first:first + 3]),
                               "model": _pieces(llm, expected[first:first + 3])})
    return {"passed": not mismatches, "texts": len(reference.texts), "mismatches": mismatches,
            "problem": _tokenizer_problem(mismatches, len(reference.texts))}


def _pieces(llm: Any, ids: list[int]) -> list[str]:
    """The token texts of ``ids`` as the file's vocabulary spells them (▁ for a SentencePiece space)."""
    vocab = llm._model
    return [vocab.token_get_text(token) if 0 <= token < llm.n_vocab() else f"<id {token}>" for token in ids]


def _tokenizer_problem(mismatches: list[dict[str, Any]], total: int) -> str:
    if not mismatches:
        return ""
    first = mismatches[0]
    which = ", ".join(str(m["probe"]) for m in mismatches)
    return (f"llama.cpp tokenizes {len(mismatches)} of {total} probe texts differently from the model's own "
            f"tokenizer (probe {which}); probe {first['probe']} ({first['text'][:40]!r}) differs at token "
            f"{first['first_difference_at']}: llama.cpp {first['llama_cpp']}, the model "
            f"{first['model']}. Prompts would reach this file as other tokens than the model's own tokenizer "
            "makes. "
            "Check that the model folder holds the base model's own tokenizer.json and tokenizer_config.json, "
            "unchanged (copy them from the base model), and export again; if they are the base's, this tokenizer "
            "layout is not one llama.cpp reproduces: use the Hugging Face model instead of this file")


def _check_top1(llm: Any, reference: Reference, threshold: float) -> dict[str, Any]:
    agree = total = 0
    for ids, expected in zip(reference.token_ids, reference.top1):
        llm.reset()
        llm.eval(ids)
        ours = np.asarray(llm.scores[: len(ids)]).argmax(-1)
        agree += int((ours == np.asarray(expected)).sum())
        total += len(ids)
    agreement = agree / total if total else 0.0
    return {"passed": agreement >= threshold, "agreement": round(agreement, 4), "positions": total,
            "threshold": threshold,
            "problem": f"next-token agreement with the merged model is {agreement:.1%} (needs ≥ {threshold:.0%})"}


def _check_template(llm: Any, reference: Reference) -> dict[str, Any]:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    embedded = llm.metadata.get("tokenizer.chat_template")
    if reference.template_text is None:
        return {"passed": embedded is None, "embedded": embedded is not None,
                "problem": "the file has a chat template the model does not have"}
    if embedded is None:
        return {"passed": False, "embedded": False, "problem": "the file has no chat template"}
    vocab = llm._model
    bos = llm.token_bos()
    eos = llm.token_eos()
    formatter = Jinja2ChatFormatter(
        embedded,
        eos_token=vocab.token_get_text(eos) if eos >= 0 else "",
        bos_token=vocab.token_get_text(bos) if bos >= 0 else "",
    )
    rendered = formatter(messages=PROBE_CONVERSATION).prompt
    same = rendered == reference.template_text
    return {"passed": same, "embedded": True,
            "problem": "the embedded chat template renders a conversation differently from transformers"}


def _check_end_of_turn(llm: Any, reference: Reference, budget: int) -> dict[str, Any]:
    file_eos = {llm.token_eos()} | ({llm._model.token_eot()} if llm._model.token_eot() >= 0 else set())
    eos_known = bool(set(reference.eos_ids) & file_eos)
    result: dict[str, Any] = {"model_stops": reference.answer_stops, "budget": budget, "eos_ids": reference.eos_ids}
    if not eos_known:
        return {**result, "passed": False,
                "problem": f"the file's end-of-turn token {sorted(file_eos)} is not the model's {reference.eos_ids}"}
    if not reference.answer_stops:
        return {**result, "passed": True, "stops": None,
                "note": "the model itself does not end its greedy answer within the budget (untrained?)",
                "problem": ""}
    allowed = FILE_ANSWER_SLACK * budget
    reply = llm.create_chat_completion(messages=PROBE_QUESTION, max_tokens=allowed, temperature=0.0, seed=0)
    choice = reply["choices"][0]
    tokens = reply["usage"]["completion_tokens"]
    stops = choice["finish_reason"] == "stop" and tokens <= allowed
    return {**result, "passed": stops, "stops": stops, "tokens": tokens, "model_tokens": len(reference.answer_ids),
            "allowed": allowed,
            "problem": f"a chat answer through the embedded template did not end within {allowed} tokens (the "
                       f"model itself ends it after {len(reference.answer_ids)})"}


def summary_text(reports: list[dict[str, Any]]) -> str:
    """The verification report in plain words, one block per file."""
    lines = []
    for report in reports:
        status = "READY" if report["passed"] else "FAILED"
        lines.append(f"{report.get('file', report['format'])}: {status}")
        if report.get("base_gguf"):
            lines.append(f"  LoRA adapter, checked applied to {report['base_gguf']}")
        checks = report.get("checks", {})
        if "tokenizer" in checks:
            tok = checks["tokenizer"]
            lines.append(f"  tokenizer: {tok['texts'] - len(tok['mismatches'])}/{tok['texts']} probe texts identical")
            for miss in tok["mismatches"]:
                lines.append(f"    probe {miss.get('probe', '?')} ({miss['text'][:40]!r}) differs at token "
                             f"{miss['first_difference_at']}: llama.cpp {miss.get('llama_cpp', [])}, "
                             f"the model {miss.get('model', [])}")
        if "top1" in checks:
            top = checks["top1"]
            lines.append(f"  next-token agreement: {top['agreement']:.1%} over {top['positions']} positions "
                         f"(threshold {top['threshold']:.0%})")
        if "chat_template" in checks:
            lines.append("  chat template: " + ("renders identically" if checks["chat_template"]["passed"] else "differs"))
        if "end_of_turn" in checks:
            eot = checks["end_of_turn"]
            if eot.get("stops") is None and eot["passed"]:
                lines.append("  end of turn: token matches; " + eot["note"])
            else:
                lines.append(f"  end of turn: {'stops' if eot['passed'] else 'does not stop'} "
                             f"within {eot.get('allowed', eot['budget'])} tokens"
                             + (f" (after {eot['tokens']}; the model after {eot['model_tokens']})"
                                if eot.get("tokens") is not None and "model_tokens" in eot else ""))
        for problem in report["problems"]:
            lines.append(f"  problem: {problem}")
    return "\n".join(lines) + "\n"

