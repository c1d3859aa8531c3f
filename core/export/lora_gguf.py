"""Write a training run's LoRA adapter as a GGUF LoRA adapter for llama.cpp.

llama.cpp applies such a file on top of the base model's GGUF at load time
(``Llama(model_path=base, lora_path=adapter)``, ``llama-cli -m base --lora
adapter``). The file carries ``general.type = adapter``, ``adapter.type =
lora`` and ``adapter.lora.alpha``; llama.cpp scales each pair by
``alpha / rank`` (the rank read from the tensors), which is peft's scaling.
Each adapted weight ``W`` of the base file gets two tensors named after it:
``<W>.lora_a`` (peft's ``lora_A``, rank × inputs) and ``<W>.lora_b`` (peft's
``lora_B``, outputs × rank), so that ``W + scale · B·A`` is the merged weight.
Where the base writer reorders the rows of Llama Q/K weights, the same row
order must hold for ``B·A``: only ``lora_b`` (whose rows are the outputs) is
reordered.

Only LoRA on the attention and MLP projections can be expressed this way; an
adapter that also trains embeddings or the output layer in full, or uses DoRA,
LoRA biases or per-module ranks, is refused before anything is written.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from doctune.core.events import CancelToken, Events
from doctune.core.export.errors import ExportError
from doctune.core.export.families import family_of, gguf_tensor_name, permute_qk, permuted_heads, tensor_names
from doctune.core.export.gguf import read_config
from doctune.core.fsio import AtomicFile

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PEFT_PREFIX = "base_model.model."
USE_MERGED_HINT = ("Use the merged GGUF files (f16, q8_0, …) of this run instead; they carry everything the "
                   "run trained.")


class LoraAdapterUnsupported(ExportError):
    """An adapter that a llama.cpp GGUF LoRA adapter cannot express."""


@dataclass
class LoraPair:
    base_name: str  # the Hugging Face name of the adapted weight
    a: np.ndarray  # rank × inputs
    b: np.ndarray  # outputs × rank


def read_adapter_config(adapter_dir: Path) -> dict[str, Any]:
    path = adapter_dir / ADAPTER_CONFIG
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ExportError(f"{path} cannot be read ({exc}).", "Train the run again; its adapter is damaged.") from None


def _refuse(adapter_dir: Path, what: str) -> LoraAdapterUnsupported:
    return LoraAdapterUnsupported(
        f"The adapter in {adapter_dir} {what}, which a llama.cpp GGUF LoRA adapter cannot carry.", USE_MERGED_HINT)


def check_config_expressible(adapter_dir: Path, config: dict[str, Any]) -> None:
    """Refuse an adapter whose settings llama.cpp's LoRA format cannot express."""
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        raise _refuse(adapter_dir, f"is a {config.get('peft_type')} adapter, not LoRA")
    if config.get("modules_to_save"):
        raise _refuse(adapter_dir, "also trains " + ", ".join(config["modules_to_save"]) + " in full "
                      "(modules_to_save, e.g. training with --train-embeddings)")
    flags = {"use_dora": "uses DoRA", "lora_bias": "trains LoRA biases", "fan_in_fan_out": "stores transposed weights",
             "rank_pattern": "uses a different rank per module", "alpha_pattern": "uses a different alpha per module",
             "layer_replication": "replicates layers", "trainable_token_indices": "trains single token embeddings"}
    for key, what in flags.items():
        if config.get(key):
            raise _refuse(adapter_dir, what)


def check_adapter_expressible(adapter_dir: Path) -> dict[str, Any]:
    """The adapter's config, after checking that its settings and tensors fit a llama.cpp LoRA adapter."""
    config = read_adapter_config(adapter_dir)
    check_config_expressible(adapter_dir, config)
    _pairs_by_name(adapter_dir, _tensor_names(adapter_dir))
    return config


def _weights_file(adapter_dir: Path) -> Path:
    path = adapter_dir / ADAPTER_WEIGHTS
    if not path.is_file():
        raise ExportError(f"{adapter_dir} has no {ADAPTER_WEIGHTS}.",
                          "Train the run again; DocTune saves adapters as safetensors.")
    return path


def _tensor_names(adapter_dir: Path) -> list[str]:
    from safetensors import safe_open

    try:
        with safe_open(str(_weights_file(adapter_dir)), framework="pt") as handle:
            return list(handle.keys())
    except ExportError:
        raise
    except Exception as exc:  # safetensors raises its own error types for damaged headers
        raise ExportError(f"{adapter_dir / ADAPTER_WEIGHTS} is damaged ({exc}).", "Train the run again.") from None


def _pairs_by_name(adapter_dir: Path, names: list[str]) -> dict[str, dict[str, str]]:
    """Adapted base weight name → {"a": key, "b": key}; anything else in the file is refused."""
    pairs: dict[str, dict[str, str]] = {}
    for key in names:
        name = key.removeprefix(PEFT_PREFIX)
        for part, marker in (("a", ".lora_A.weight"), ("b", ".lora_B.weight")):  # noqa: B007 (read after break)
            if name.endswith(marker):
                base = name.removesuffix(marker) + ".weight"
                break
        else:
            what = "trains embeddings with LoRA" if "lora_embedding" in name else f"holds tensor '{key}'"
            raise _refuse(adapter_dir, what)
        module = base.rsplit(".", 2)[-2]
        if module not in PROJECTIONS:
            raise _refuse(adapter_dir, f"adapts '{module}' (only {', '.join(PROJECTIONS)} are supported)")
        pairs.setdefault(base, {})[part] = key
    incomplete = [base for base, pair in pairs.items() if len(pair) != 2]
    if incomplete:
        raise ExportError(f"The adapter in {adapter_dir} lacks half of the LoRA pair of {incomplete[0]}.",
                          "Train the run again; its adapter is damaged.")
    if not pairs:
        raise ExportError(f"The adapter in {adapter_dir} holds no LoRA weights.", "Train the run again.")
    return pairs


def _read_pairs(adapter_dir: Path) -> list[LoraPair]:
    from safetensors import safe_open

    pairs = _pairs_by_name(adapter_dir, _tensor_names(adapter_dir))
    with safe_open(str(_weights_file(adapter_dir)), framework="pt") as handle:
        return [LoraPair(base, *(handle.get_tensor(keys[part]).float().numpy() for part in ("a", "b")))
                for base, keys in sorted(pairs.items())]


def file_alpha(config: dict[str, Any]) -> float:
    """``adapter.lora.alpha`` such that llama.cpp's ``alpha / rank`` equals peft's scaling (rsLoRA: alpha / √rank)."""
    alpha = float(config.get("lora_alpha") or config.get("r") or 8)
    return alpha * math.sqrt(int(config["r"])) if config.get("use_rslora") else alpha


def write_lora_gguf(adapter_dir: str | Path, base_dir: str | Path, out_path: str | Path, *,
                    events: Events | None = None, cancel: CancelToken | None = None) -> Path:
    """Write the peft adapter in ``adapter_dir`` (trained on the model in ``base_dir``) as a GGUF LoRA adapter."""
    adapter_dir, base_dir, out_path = Path(adapter_dir), Path(base_dir), Path(out_path)
    events = (events or Events()).child("export.write")
    config = read_adapter_config(adapter_dir)
    check_config_expressible(adapter_dir, config)
    model_config = read_config(base_dir)
    family = family_of(model_config)
    tensors = _adapter_tensors(_read_pairs(adapter_dir), family, model_config, adapter_dir)
    total = sum(data.nbytes for _, data in tensors)
    events.log(f"Writing the LoRA adapter as GGUF ({len(tensors) // 2} adapted weights, {total / 1e6:.1f} MB) "
               f"to {out_path.name}", bytes_total=total)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with AtomicFile(out_path) as tmp:
        writer = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[family.arch])
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, file_alpha(config))
        writer.add_name(f"{base_dir.name} LoRA adapter")
        writer.add_file_type(gguf.LlamaFileType.ALL_F32)
        for name, data in tensors:
            if cancel:
                cancel.raise_if_cancelled()
            writer.add_tensor(name, data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return out_path


def _adapter_tensors(pairs: list[LoraPair], family, model_config: dict[str, Any],
                     adapter_dir: Path) -> list[tuple[str, np.ndarray]]:
    """``(<gguf weight>.lora_a, A)``, ``(<gguf weight>.lora_b, B)`` per pair, B's rows in the base file's order."""
    names = tensor_names(family, model_config)
    tensors = []
    for pair in pairs:
        target = gguf_tensor_name(names, pair.base_name)
        if target is None:
            raise LoraAdapterUnsupported(f"The adapter in {adapter_dir} adapts '{pair.base_name}', which has no "
                                         f"place in a {family.name} GGUF.", USE_MERGED_HINT)
        heads = permuted_heads(pair.base_name, family, model_config)
        b = permute_qk(pair.b, heads) if heads is not None else pair.b
        tensors.append((f"{target}.lora_a", np.ascontiguousarray(pair.a, dtype=np.float32)))
        tensors.append((f"{target}.lora_b", np.ascontiguousarray(b, dtype=np.float32)))
    return tensors
