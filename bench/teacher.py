"""Local teacher benchmark: batched generation against one request at a time.

Runs with no arguments. Two models with the tiny tokenizer: the tiny test
model (~3M parameters, where per-token overhead dominates) and a random
~100M-parameter Llama-style model (``bench/export.py``'s builder, written as
F16 GGUF: compute dominates). The requests are synthesis's own: the ``qa``
recipe's prompt over a few passages, four questions per passage (so requests
of one chunk share the passage prefix), with the ``qa`` JSON schema (grammar)
at temperature 0 and a token limit per reply (a random model writes strings up
to their bounds, so most replies end at the limit; real teachers stop sooner).

The one-at-a-time teacher is ``LocalModel.complete`` (``Llama.create_completion``,
what ``LocalTeacher`` runs with ``parallel = 1``); the batched one is the same
model's ``BatchEngine`` driven as ``LocalTeacher``'s dispatcher drives it
(``LocalModel.serve``, ``k`` requests kept in flight) at 1, 4 and 8 sequences.
Both run in this process with the same GGUF, prompts, schema and threads, so
the figures compare the engines, not the process boundary. Items/s and
completion tokens/s, best of ``ROUNDS``, the systems taking turns. The last
line printed is one JSON object; ``ratio`` is items/s batched ÷ one-at-a-time
at 8 sequences on the 100M model (target ≥ 2.5).

Threads are the local teacher's own (``THREADS``: llama-cpp-python's defaults,
as ``doctune synth`` runs it): llama.cpp evaluates a single token on half the
cores and a batch of tokens on all of them, so one-at-a-time generation uses
half the machine and the batched engine, whose every step is a batch, all of
it. That is part of what batching gives a user, so it is in ``ratio``; the
100M model is also measured on one thread for both
(``random_100m_one_thread``, ``ratio_one_thread``): the engine's gain alone.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

THREADS = None  # the local teacher's own setting (see above)
ONE_THREAD = 1
PASSAGES = 4
PER_PASSAGE = 4  # synthesis asks several items of each chunk (qa, focal questions and rewrites)
MAX_TOKENS = {"tiny": 128, "random_100m": 128}
SEQUENCES = (1, 4, 8)
ROUNDS = {"tiny": 2, "random_100m": 1}
N_CTX = 1024
TARGET_RATIO = 2.5
REPO = Path(__file__).resolve().parent.parent
TOPICS = [
    "The Quintrel Foundry cast its first bell in the spring of 1871, and the town grew around its works.",
    "The ferry to Inchmara leaves at dawn and returns at dusk, carrying mail, sheep and the island's doctor.",
    "Marrow Lake freezes from the north shore in December; the ice road opens once it is thirty centimetres thick.",
    "The Halden archive keeps parish ledgers from 1620 onwards, bound in calfskin and stored below 15 degrees.",
    "Orvell's tide mill ground oats for three villages until the sluice gate failed in the storm of 1903.",
    "The Kestrel line's night train stops at Brannock only on request, by a lever on the platform.",
    "Saltmarsh cooperative members share two boats, a smokehouse and a ledger of every catch since 1958.",
    "The observatory on Cairn Hill measured the comet of 1882 with a refractor lent by the university.",
]


def requests() -> list[dict]:
    """Synthesis's ``qa`` requests: ``PER_PASSAGE`` questions about each of ``PASSAGES`` passages."""
    from doctune.core.config import SynthSettings
    from doctune.core.synth import schemas
    from doctune.core.synth.prompts import load_prompt

    prompt = load_prompt("qa")
    schema = schemas.qa_schema(SynthSettings())
    out = []
    for p in range(PASSAGES):
        passage = " ".join(TOPICS[(p + i) % len(TOPICS)] for i in range(4))
        for number in range(PER_PASSAGE):
            messages = prompt.messages(title=f"Notes {p}", heading="History", passage=passage,
                                       number=number + 1, aspect=prompt.pick("aspects", number))
            out.append({"messages": messages, "schema": schema, "temperature": 0.0, "seed": number})
    return out


def one_at_a_time(model, reqs: list[dict], max_tokens: int) -> list:
    return [model.complete(**req, max_tokens=max_tokens) for req in reqs]


def batched(model, reqs: list[dict], max_tokens: int, sequences: int) -> list:
    """Keep ``sequences`` requests in flight, each finished one replaced by the next (the dispatcher's way)."""
    queue = list(enumerate(reqs))
    replies: dict[int, object] = {}
    new = [(key, {**req, "max_tokens": max_tokens}) for key, req in queue[:sequences]]
    queue = queue[sequences:]
    while len(replies) < len(reqs):
        for key, reply in model.serve(new, 0.0):
            replies[key] = reply
        refill = len(reqs) - len(replies) - len(queue)
        new = [(key, {**req, "max_tokens": max_tokens}) for key, req in queue[:sequences - refill]]
        queue = queue[len(new):]
    return [replies[key] for key in range(len(reqs))]


def timed(fn, *args) -> tuple[float, list]:
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def measure(path: Path, label: str, threads: int | None = THREADS) -> dict:
    from doctune.core.teachers.local import LocalModel

    reqs = requests()
    max_tokens = MAX_TOKENS[label]
    common = {"n_ctx": N_CTX, "n_gpu_layers": -1, "temperature": 0.0, "max_tokens": 1024, "n_threads": threads}
    single = LocalModel(path, **common)
    engines = {k: LocalModel(path, **common, batch_slots=k) for k in SEQUENCES}
    systems = {"one_at_a_time": lambda: one_at_a_time(single, reqs, max_tokens)}
    systems |= {f"batched_{k}": (lambda k=k: batched(engines[k], reqs, max_tokens, k)) for k in SEQUENCES}
    best = {name: float("inf") for name in systems}
    replies: dict[str, list] = {}
    for _ in range(ROUNDS[label]):
        for name, run in systems.items():
            seconds, replies[name] = timed(run)
            best[name] = min(best[name], seconds)
            print(f"{label} {name}: {seconds:.1f} s", file=sys.stderr, flush=True)
    for model in [single, *engines.values()]:
        model.close()
    tokens = {name: sum(reply.completion_tokens for reply in out) for name, out in replies.items()}
    reference = [(r.text, r.data) for r in replies["one_at_a_time"]]
    return {
        "requests": len(reqs), "max_tokens": max_tokens,
        "prompt_tokens_per_request": round(sum(r.prompt_tokens for r in replies["one_at_a_time"]) / len(reqs), 1),
        "items_per_s": {name: round(len(reqs) / seconds, 3) for name, seconds in best.items()},
        "tokens_per_s": {name: round(tokens[name] / seconds, 1) for name, seconds in best.items()},
        "identical_to_one_at_a_time": {name: [(r.text, r.data) for r in out] == reference
                                       for name, out in replies.items() if name != "one_at_a_time"},
        "ratio_items_per_s": {f"batched_{k}": round(best["one_at_a_time"] / best[f"batched_{k}"], 2)
                              for k in SEQUENCES},
    }


def main() -> dict:
    from doctune.core.export.gguf import write_gguf
    from doctune.core.llamacpp import system_info
    from doctune.core.tiny import ensure_tiny_model
    from export import build_100m_model

    tiny = ensure_tiny_model("llama", REPO / "tests" / ".artifacts" / "tiny")
    tokenizer_dir = next(tiny.parent.glob(f"tokenizer-{tiny.name.split('-')[1]}"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_gguf(tiny, work / "tiny-f16.gguf")
        big = build_100m_model(work / "random-100m", tokenizer_dir)
        n_params = sum(f.stat().st_size for f in big.glob("*.safetensors")) // 4
        write_gguf(big, work / "random-100m-f16.gguf")
        results = {"tiny": measure(work / "tiny-f16.gguf", "tiny"),
                   "random_100m": measure(work / "random-100m-f16.gguf", "random_100m"),
                   "random_100m_one_thread": measure(work / "random-100m-f16.gguf", "random_100m", ONE_THREAD)}
    ratio = results["random_100m"]["ratio_items_per_s"]["batched_8"]
    return {
        **results,
        "random_100m_parameters": n_params, "n_ctx_per_sequence": N_CTX, "format": "f16",
        "threads": "the local teacher's defaults: a single token on half the cores, a batch on all",
        "ratio_one_thread": results["random_100m_one_thread"]["ratio_items_per_s"]["batched_8"],
        "baseline": "one request at a time (LocalModel.complete: Llama.create_completion with the grammar and the "
                    "hard token limit), same GGUF, prompts, schema, temperature 0 and thread settings",
        "ratio": ratio,
        "ratio_means": "items/s batched (8 sequences) / items/s one at a time, random 100M model",
        "llama_cpp_system_info": system_info(),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO,
    }


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    print(json.dumps(main()))
