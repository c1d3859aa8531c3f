"""Write an F16 GGUF file from a Hugging Face model folder.

Our own writer on top of the ``gguf`` package: llama.cpp's converter script is
not installable from PyPI. Tensors are streamed one at a time from the
safetensors files (memory stays near one tensor), matrices as F16, norms and
biases as F32, into a temporary file that replaces the target only when it is
complete.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from doctune.core.events import CancelToken, Events
from doctune.core.export.errors import ExportError, UnsupportedModelError
from doctune.core.export.families import (
    Family,
    add_architecture_metadata,
    family_of,
    gguf_tensor_name,
    llama3_rope_factors,
    needs_llama3_rope_factors,
    permute_qk,
    permuted_heads,
    tensor_names,
)
from doctune.core.export.vocab import add_vocab, build_vocab
from doctune.core.fsio import AtomicFile

SKIPPED_SUFFIXES = ("rotary_emb.inv_freq",)


@dataclass
class PlannedTensor:
    gguf_name: str
    hf_name: str | None  # None: a tensor we compute (rope factors)
    file: Path | None
    shape: tuple[int, ...]
    dtype: type


def read_config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    if not path.is_file():
        raise ExportError(f"{model_dir} has no config.json; it is not a Hugging Face model folder.",
                          "Point the export at the folder that holds config.json and the safetensors files.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path} is not valid JSON ({exc}).", "Restore the file from the base model.") from None


def safetensors_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        files = [model_dir / name for name in names]
    else:
        files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ExportError(f"{model_dir} holds no .safetensors weights.",
                          "Save the model with safe_serialization=True (the default) and export again.")
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ExportError(f"{model_dir} lacks weight files listed in its index: {', '.join(missing)}.",
                          "Copy the missing shards or save the model again.")
    return files


def _open(file: Path):
    from safetensors import safe_open

    try:
        return safe_open(str(file), framework="pt")
    except Exception as exc:  # safetensors raises its own error types for damaged headers
        raise ExportError(f"{file} is damaged or not a safetensors file ({exc}).",
                          "Save or merge the model again; the file may have been cut short.") from None


def _target_dtype(name: str, ndim: int) -> type:
    return np.float16 if ndim == 2 and name.endswith(".weight") else np.float32


def plan_tensors(model_dir: Path, config: dict[str, Any], family: Family) -> list[PlannedTensor]:
    """Every tensor that goes into the file, with its GGUF name, shape and type."""
    names = tensor_names(family, config)
    tied = bool(config.get("tie_word_embeddings", False))
    planned: list[PlannedTensor] = []
    for file in safetensors_files(model_dir):
        with _open(file) as handle:
            for hf_name in handle.keys():
                if hf_name.endswith(SKIPPED_SUFFIXES) or (tied and hf_name == "lm_head.weight"):
                    continue
                gguf_name = gguf_tensor_name(names, hf_name)
                if gguf_name is None:
                    raise UnsupportedModelError(
                        f"{file.name} holds tensor '{hf_name}', which has no place in a {family.name} GGUF.",
                        "The weights do not match their config.json; export an unmodified model of a supported family.",
                    )
                shape = tuple(handle.get_slice(hf_name).get_shape())
                planned.append(PlannedTensor(gguf_name, hf_name, file, shape, _target_dtype(gguf_name, len(shape))))
    if needs_llama3_rope_factors(config):
        factors = llama3_rope_factors(config)
        planned.append(PlannedTensor(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", None, None,
                                     factors.shape, np.float32))
    _check_complete(planned, tied, model_dir)
    return planned


def _check_complete(planned: list[PlannedTensor], tied: bool, model_dir: Path) -> None:
    present = {t.gguf_name for t in planned}
    required = ["token_embd.weight", "output_norm.weight"] + ([] if tied else ["output.weight"])
    missing = [name for name in required if name not in present]
    if missing:
        raise ExportError(f"The weights in {model_dir} lack {', '.join(missing)}.",
                          "The safetensors files are incomplete; save or merge the model again.")


def _load(tensor: PlannedTensor, config: dict[str, Any], family: Family, handles: dict[Path, Any]) -> np.ndarray:
    if tensor.hf_name is None:
        return llama3_rope_factors(config)
    assert tensor.file is not None
    try:
        data = handles[tensor.file].get_tensor(tensor.hf_name).float().numpy()
    except Exception as exc:
        raise ExportError(f"Tensor '{tensor.hf_name}' in {tensor.file} cannot be read ({exc}).",
                          "The file is damaged; save or merge the model again.") from None
    heads = permuted_heads(tensor.hf_name, family, config)
    if heads is not None:
        data = permute_qk(data, heads)
    return np.ascontiguousarray(data.astype(tensor.dtype))


def _nbytes(tensor: PlannedTensor) -> int:
    return int(np.prod(tensor.shape)) * np.dtype(tensor.dtype).itemsize


def write_gguf(
    model_dir: str | Path,
    out_path: str | Path,
    *,
    events: Events | None = None,
    cancel: CancelToken | None = None,
    fallback_pre: str | None = None,
) -> Path:
    """Write ``model_dir`` (a Hugging Face folder) as an F16 GGUF at ``out_path``.

    Raises ``UnsupportedModelError`` for an architecture or tokenizer it cannot
    write and ``ExportError`` for missing or damaged files; in both cases
    nothing is left at ``out_path``.
    """
    model_dir, out_path = Path(model_dir), Path(out_path)
    events = (events or Events()).child("export.write")
    config = read_config(model_dir)
    family = family_of(config)
    vocab = build_vocab(model_dir, int(config["vocab_size"]), fallback_pre, events)
    planned = plan_tensors(model_dir, config, family)
    total = sum(_nbytes(t) for t in planned)
    events.log(f"Writing {family.name} GGUF (F16, {len(planned)} tensors, {total / 1e6:.1f} MB) to {out_path.name}",
               bytes_total=total, pre_tokenizer=vocab.pre)
    _check_writable(out_path)
    with AtomicFile(out_path) as tmp:
        writer = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[family.arch])
        _add_metadata(writer, model_dir, config, family)
        add_vocab(writer, model_dir, vocab)
        for tensor in planned:
            writer.add_tensor_info(tensor.gguf_name, tensor.shape, np.dtype(tensor.dtype), _nbytes(tensor))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        tracker = events.tracker(total, unit="bytes")
        for tensor, data in _stream(planned, config, family):
            if cancel:
                cancel.raise_if_cancelled()
            writer.write_tensor_data(data)
            tracker.advance(data.nbytes, message=tensor.gguf_name)
        writer.close()
    return out_path


def _stream(planned: list[PlannedTensor], config: dict[str, Any], family: Family) -> Iterator[tuple[PlannedTensor, np.ndarray]]:
    files = sorted({t.file for t in planned if t.file is not None})
    handles = {file: _open(file) for file in files}
    for tensor in planned:
        yield tensor, _load(tensor, config, family, handles)


def _check_writable(out_path: Path) -> None:
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        probe = out_path.parent / f".{out_path.name}.probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ExportError(f"Cannot write to {out_path.parent} ({exc.strerror or exc}).",
                          "Choose a folder you can write to, or free disk space.") from None


def _add_metadata(writer: gguf.GGUFWriter, model_dir: Path, config: dict[str, Any], family: Family) -> None:
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(model_dir.name)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_architecture_metadata(writer, config)
