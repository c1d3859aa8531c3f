"""Export benchmark: time per format, and llama.cpp generation speed beside transformers.

Runs with no arguments. Two models: the tiny test model (~3M parameters) and
a random ~100M-parameter Llama-style model with the same tokenizer. For each:
seconds to write the F16 GGUF and to quantize it to Q8_0 and Q4_K_M, and the
file sizes. For the 100M model also the generation speed (greedy, same prompt,
same number of new tokens, one thread each) of the Q8_0 and Q4_K_M files through
llama.cpp and of the Hugging Face model through transformers ``generate``,
and the same quantized files with llama.cpp's extra (repacking) buffer types
turned off: what the workaround for AMX processors (``core/llamacpp.py``)
costs where it applies. The last line printed is one JSON object with the figures, the ratios and the
target (llama.cpp Q8_0 at least 3x transformers on CPU).
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

NEW_TOKENS = 64
THREADS = 1  # the same for both; on a shared, oversubscribed CPU multi-threaded llama.cpp stalls at its barriers
PROMPT = "The Quintrel Foundry cast its first bell in the spring of 1871, and the town"
TARGET_RATIO = 3.0
REPO = Path(__file__).resolve().parent.parent


def build_100m_model(out: Path, tokenizer_dir: Path) -> Path:
    """A random Llama-style model of ~100M parameters with the tiny tokenizer."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from doctune.core.tiny import padded_vocab_size

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = transformers.LlamaConfig(
        vocab_size=padded_vocab_size(len(tokenizer)), hidden_size=768, intermediate_size=2048,
        num_hidden_layers=16, num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=2048,
        rms_norm_eps=1e-5, tie_word_embeddings=False, eos_token_id=eos, bos_token_id=None,
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0})
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


def export_times(model_dir: Path, work: Path) -> dict:
    from doctune.core.export.gguf import write_gguf
    from doctune.core.export.quantize import quantize_gguf

    f16 = work / f"{model_dir.name}-f16.gguf"
    figures: dict = {"f16_write_s": round(timed(write_gguf, model_dir, f16)[0], 2), "f16_mb": f16.stat().st_size / 1e6}
    for fmt in ("q8_0", "q4_k_m"):
        out = work / f"{model_dir.name}-{fmt}.gguf"
        figures[f"{fmt}_quantize_s"] = round(timed(quantize_gguf, f16, out, fmt)[0], 2)
        figures[f"{fmt}_mb"] = round(out.stat().st_size / 1e6, 2)
    figures["f16_mb"] = round(figures["f16_mb"], 2)
    return figures


def llama_cpp_generator(path: Path, extra_buffers: bool | None = None):
    """A function that generates ``NEW_TOKENS`` greedy tokens with llama.cpp (EOS does not stop it).

    ``extra_buffers`` forces llama.cpp's extra buffer types on or off (None: this machine's setting).
    """
    import os

    from doctune.core.llamacpp import EXTRA_BUFFERS_ENV, load_llama

    saved = os.environ.pop(EXTRA_BUFFERS_ENV, None)
    if extra_buffers is not None:
        os.environ[EXTRA_BUFFERS_ENV] = "1" if extra_buffers else "0"
    try:
        llm = load_llama(path, n_ctx=512, n_threads=THREADS, n_threads_batch=THREADS, seed=0)
    finally:
        os.environ.pop(EXTRA_BUFFERS_ENV, None)
        if saved is not None:
            os.environ[EXTRA_BUFFERS_ENV] = saved
    prompt = llm.tokenize(PROMPT.encode())

    def generate() -> None:
        llm.reset()
        for count, _ in enumerate(llm.generate(prompt, temp=0.0, top_k=1), start=1):
            if count >= NEW_TOKENS:
                break

    return generate


def transformers_generator(model_dir: Path):
    """The same with transformers ``generate`` (forced to the same length)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(THREADS)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = torch.tensor([tokenizer.encode(PROMPT)])

    def generate() -> None:
        with torch.no_grad():
            model.generate(ids, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False,
                           pad_token_id=tokenizer.pad_token_id)

    return generate


def tokens_per_s(generators: dict, rounds: int = 3) -> dict[str, float]:
    """Best of ``rounds`` per system, the systems taking turns so each sees the same machine load."""
    for generate in generators.values():
        generate()  # warm-up
    best = {name: float("inf") for name in generators}
    for _ in range(rounds):
        for name, generate in generators.items():
            best[name] = min(best[name], timed(generate)[0])
    return {name: NEW_TOKENS / seconds for name, seconds in best.items()}


def main() -> dict:
    from doctune.core.llamacpp import extra_buffers_allowed, system_info
    from doctune.core.tiny import ensure_tiny_model

    tiny = ensure_tiny_model("llama", REPO / "tests" / ".artifacts" / "tiny")
    tokenizer_dir = next(tiny.parent.glob(f"tokenizer-{tiny.name.split('-')[1]}"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        big = build_100m_model(work / "random-100m", tokenizer_dir)
        n_params = sum(f.stat().st_size for f in big.glob("*.safetensors")) // 4
        results = {"tiny": export_times(tiny, work), "random_100m": export_times(big, work)}
        speed = tokens_per_s({
            "llama_cpp_q8_0": llama_cpp_generator(work / "random-100m-q8_0.gguf"),
            "llama_cpp_q4_k_m": llama_cpp_generator(work / "random-100m-q4_k_m.gguf"),
            "llama_cpp_q8_0_no_extra_buffers": llama_cpp_generator(work / "random-100m-q8_0.gguf", False),
            "llama_cpp_q4_k_m_no_extra_buffers": llama_cpp_generator(work / "random-100m-q4_k_m.gguf", False),
            "transformers_fp32": transformers_generator(big),
        })
    ratio_q8 = speed["llama_cpp_q8_0"] / speed["transformers_fp32"]
    ratio_q4 = speed["llama_cpp_q4_k_m"] / speed["transformers_fp32"]
    return {
        "export": results,
        "random_100m_parameters": n_params,
        "new_tokens": NEW_TOKENS, "threads": THREADS,
        "tokens_per_s": {key: round(value, 1) for key, value in speed.items()},
        "baseline": "transformers generate (fp32, CPU) of the same model, same prompt and length",
        "ratio_q8_0_vs_transformers": round(ratio_q8, 2),
        "ratio_q4_k_m_vs_transformers": round(ratio_q4, 2),
        "extra_buffers_on_this_machine": extra_buffers_allowed(),
        "cost_of_no_extra_buffers": {
            fmt: round(1 - speed[f"llama_cpp_{fmt}_no_extra_buffers"] / speed[f"llama_cpp_{fmt}"], 3)
            for fmt in ("q8_0", "q4_k_m")},
        "llama_cpp_system_info": system_info(),
        "target_ratio_q8_0": TARGET_RATIO,
        "meets_target": ratio_q8 >= TARGET_RATIO,
    }


if __name__ == "__main__":
    print(json.dumps(main()))
