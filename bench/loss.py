"""Benchmark of the training loss's output layer: logits at the learned positions only, against every position's.

DocTune's training (``doctune.core.train.step._next_token_loss``) runs the output layer only where a token is
learned (``logits_to_keep``): in a chat item most tokens are prompt, and a real student's output layer is as wide as
its vocabulary. The baseline is the usual ``model(**batch, labels=...).loss``, which computes logits at every
position. Same model, same packed row, same LoRA; each side in its own child process (so each peak memory is its
own), two threads.

The model is a small random Qwen2 body (two layers of 128) with Qwen2.5's 151,936-token vocabulary, so the output
layer weighs as it does in a real student: the figures say what the output layer costs, not what a whole real
student's step costs (its body is much larger). The row: about 1,900 tokens, four chat items of ~400-500 prompt tokens
and 8-16 answer tokens, as the knowledge lab's open-book items are.

Prints a human summary, then one JSON object as the last line: seconds per step (forward and backward, the best of
``STEPS``) and the growth of peak memory over the step, of each side; the ratios; the target (never slower, and at
least ``TARGET_MEMORY_RATIO`` less memory).
"""
from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import time

VOCAB = 151_936
BODY = {"hidden": 128, "layers": 2, "heads": 4, "kv_heads": 2, "ffn": 256}
ITEMS, PROMPT, ANSWER = 4, (380, 490), (8, 16)
STEPS = 4
THREADS = 2
TARGET_TIME_RATIO = 1.0
TARGET_MEMORY_RATIO = 4.0


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _model_and_row():
    """The adapted model and one packed row of chat items (seeded)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from doctune.core.tiny import tiny_config
    from doctune.core.train import data as packing

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config("qwen2", VOCAB, 1, 2, sizes=BODY), dtype=torch.float32)
    model.config.use_cache = False  # as training loads it
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    rng = random.Random(0)
    examples = []
    for i in range(ITEMS):
        prompt, answer = rng.randint(*PROMPT), rng.randint(*ANSWER)
        examples.append(packing.Example(f"item-{i}", "qa", [rng.randrange(VOCAB) for _ in range(prompt + answer)],
                                        [False] * prompt + [True] * answer))
    return model, packing.collate(examples)


def child(side: str) -> None:
    """One side's steps; prints its figures as JSON."""
    from types import SimpleNamespace

    import torch

    from doctune.core.train.step import _next_token_loss

    torch.set_num_threads(THREADS)
    model, batch = _model_and_row()
    session = SimpleNamespace(trained=model, model=model)
    loss_of = (lambda: _next_token_loss(session, batch)) if side == "ours" else (lambda: model(**batch).loss)
    before = _peak_rss_mb()
    seconds = []
    for _ in range(STEPS):
        started = time.perf_counter()
        loss = loss_of()
        loss.backward()
        model.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - started)
    print(json.dumps({"seconds": min(seconds), "memory_mb": _peak_rss_mb() - before, "loss": float(loss.detach()),
                      "tokens": int(batch["input_ids"].numel())}))


def run_side(side: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, __file__, "--child", side], capture_output=True, text=True, env=env,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"{side} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ours, baseline = run_side("ours"), run_side("baseline")
    if abs(ours["loss"] - baseline["loss"]) > 1e-4 * abs(baseline["loss"]):
        raise SystemExit(f"The two losses differ: {ours['loss']} against {baseline['loss']}")
    time_ratio = baseline["seconds"] / ours["seconds"]
    memory_ratio = baseline["memory_mb"] / max(ours["memory_mb"], 1.0)
    result = {
        "bench": "loss", "vocab": VOCAB, "body": BODY, "row_tokens": ours["tokens"], "threads": THREADS,
        "ours_s": round(ours["seconds"], 3), "baseline_s": round(baseline["seconds"], 3),
        "ours_memory_mb": round(ours["memory_mb"], 1), "baseline_memory_mb": round(baseline["memory_mb"], 1),
        "baseline": "model(**batch).loss: logits at every position", "loss": round(ours["loss"], 5),
        "time_ratio": round(time_ratio, 2), "memory_ratio": round(memory_ratio, 1),
        "target": {"time_ratio_min": TARGET_TIME_RATIO, "memory_ratio_min": TARGET_MEMORY_RATIO},
        "meets_target": time_ratio >= TARGET_TIME_RATIO and memory_ratio >= TARGET_MEMORY_RATIO,
    }
    print(f"a training step's loss: learned positions {result['ours_s']} s and {result['ours_memory_mb']} MB, "
          f"every position {result['baseline_s']} s and {result['baseline_memory_mb']} MB "
          f"({result['time_ratio']}× faster, {result['memory_ratio']}× less memory)")
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()
