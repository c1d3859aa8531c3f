"""Model families the GGUF writer handles, and the metadata each one needs.

A family maps a Hugging Face ``architectures`` entry to a llama.cpp
architecture and says whether the attention Q/K rows are permuted: llama.cpp
applies rotary embeddings to interleaved pairs, Hugging Face Llama checkpoints
to rotated halves, so Llama-style weights are reordered on the way out while
Qwen2/Qwen3 (whose llama.cpp graph uses the NEOX layout) are written as they are.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gguf
import numpy as np

from doctune.core.export.errors import UnsupportedModelError


@dataclass(frozen=True)
class Family:
    name: str
    arch: gguf.MODEL_ARCH
    permute_qk: bool


FAMILIES: dict[str, Family] = {
    "LlamaForCausalLM": Family("llama", gguf.MODEL_ARCH.LLAMA, permute_qk=True),
    "MistralForCausalLM": Family("mistral", gguf.MODEL_ARCH.LLAMA, permute_qk=True),
    "Qwen2ForCausalLM": Family("qwen2", gguf.MODEL_ARCH.QWEN2, permute_qk=False),
    "Qwen3ForCausalLM": Family("qwen3", gguf.MODEL_ARCH.QWEN3, permute_qk=False),
}


def supported_architectures() -> str:
    return ", ".join(sorted(FAMILIES))


def family_of(config: dict[str, Any]) -> Family:
    """The family named by a Hugging Face ``config.json``; a clear error otherwise."""
    names = config.get("architectures") or []
    for name in names:
        if name in FAMILIES:
            return FAMILIES[name]
    shown = ", ".join(names) if names else f"model_type {config.get('model_type')!r}"
    raise UnsupportedModelError(
        f"The model architecture ({shown}) cannot be exported to GGUF yet.",
        f"Supported architectures: {supported_architectures()}. Pick a student model of one of these families.",
    )


def head_dim(config: dict[str, Any]) -> int:
    return int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])


def rope_parameters(config: dict[str, Any]) -> dict[str, Any]:
    """Rope settings from transformers 5 (``rope_parameters``) or 4 (``rope_theta`` + ``rope_scaling``)."""
    params = dict(config.get("rope_scaling") or {})
    params.update(config.get("rope_parameters") or {})
    if "rope_theta" not in params and "rope_theta" in config:
        params["rope_theta"] = config["rope_theta"]
    if "rope_type" not in params and "type" in params:
        params["rope_type"] = params["type"]
    return params


def tensor_names(family: Family, config: dict[str, Any]) -> gguf.TensorNameMap:
    """Hugging Face tensor name → GGUF tensor name, for this family and depth."""
    return gguf.get_tensor_name_map(family.arch, int(config["num_hidden_layers"]))


def gguf_tensor_name(names: gguf.TensorNameMap, hf_name: str) -> str | None:
    """The GGUF name of a Hugging Face weight or bias (``None``: it has no place in the file)."""
    return names.get_name(hf_name, try_suffixes=(".weight", ".bias"))


def permuted_heads(hf_name: str, family: Family, config: dict[str, Any]) -> int | None:
    """Heads whose rows ``permute_qk`` must reorder in this Q/K tensor; ``None`` for tensors written as they are."""
    if not family.permute_qk:
        return None
    if hf_name.endswith(("q_proj.weight", "q_proj.bias")):
        return int(config["num_attention_heads"])
    if hf_name.endswith(("k_proj.weight", "k_proj.bias")):
        return int(config.get("num_key_value_heads") or config["num_attention_heads"])
    return None


def permute_qk(weights: np.ndarray, n_heads: int) -> np.ndarray:
    """Reorder each head's rows from rotated-halves to interleaved-pairs layout."""
    rows = weights.shape[0]
    shape = (n_heads, 2, rows // n_heads // 2) + weights.shape[1:]
    return weights.reshape(shape).swapaxes(1, 2).reshape(weights.shape)


def llama3_rope_factors(config: dict[str, Any]) -> np.ndarray:
    """Per-frequency divisors of Llama 3.x rope scaling, as llama.cpp's ``rope_freqs`` tensor.

    Long wavelengths are divided by ``factor``, short ones kept, and the band
    between them blended smoothly (the scheme Llama 3.1 was trained with).
    """
    rope = rope_parameters(config)
    dim = head_dim(config)
    base = float(rope.get("rope_theta", 10000.0))
    factor = float(rope.get("factor", 8.0))
    low = float(rope.get("low_freq_factor", 1.0))
    high = float(rope.get("high_freq_factor", 4.0))
    original = float(rope.get("original_max_position_embeddings", 8192))
    inv_freq = 1.0 / base ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    wavelen = 2 * math.pi / inv_freq
    smooth = (original / wavelen - low) / (high - low)
    blended = 1.0 / ((1 - smooth) / factor + smooth)
    factors = np.where(wavelen < original / high, 1.0, np.where(wavelen > original / low, factor, blended))
    return factors.astype(np.float32)


def add_architecture_metadata(writer: gguf.GGUFWriter, config: dict[str, Any]) -> None:
    """Sizes, heads, norm epsilon, rope base and scaling."""
    dim = head_dim(config)
    writer.add_context_length(int(config.get("max_position_embeddings", 2048)))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or config["num_attention_heads"]))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    writer.add_key_length(dim)
    writer.add_value_length(dim)
    writer.add_rope_dimension_count(dim)
    writer.add_vocab_size(int(config["vocab_size"]))
    rope = rope_parameters(config)
    writer.add_rope_freq_base(float(rope.get("rope_theta", 10000.0)))
    _add_rope_scaling(writer, rope)
    if config.get("sliding_window") and config.get("use_sliding_window", True) and config.get("model_type") == "mistral":
        writer.add_sliding_window(int(config["sliding_window"]))


def _add_rope_scaling(writer: gguf.GGUFWriter, rope: dict[str, Any]) -> None:
    kind = str(rope.get("rope_type", "default")).lower()
    if kind in ("default", "llama3"):
        return  # llama3 scaling travels as the rope_freqs tensor
    if kind == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    elif kind == "yarn":
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(float(rope["factor"]))
        if "original_max_position_embeddings" in rope:
            writer.add_rope_scaling_orig_ctx_len(int(rope["original_max_position_embeddings"]))
    else:
        raise UnsupportedModelError(
            f"The model uses rope scaling '{kind}', which the GGUF writer does not handle.",
            "Supported rope scaling: default, linear, yarn, llama3.",
        )


def needs_llama3_rope_factors(config: dict[str, Any]) -> bool:
    return str(rope_parameters(config).get("rope_type", "")).lower() == "llama3"
