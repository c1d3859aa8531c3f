"""A run's adapter as a GGUF LoRA adapter: llama.cpp's base + adapter behaves like the merged model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from doctune.core.cli import main
from doctune.core.export import ready_gguf
from doctune.core.export.folder import read_manifest
from doctune.core.export.gguf import write_gguf
from doctune.core.export.lora_gguf import LoraAdapterUnsupported, check_config_expressible, write_lora_gguf
from doctune.core.export.merge import merge_run
from doctune.core.export.verify import PROBE_TEXTS
from doctune.core.runs import adapter_base


def _logits(gguf_path, token_ids, lora_path=None) -> np.ndarray:
    from doctune.core.llamacpp import load_llama

    llm = load_llama(gguf_path, lora_path=str(lora_path) if lora_path else None, n_ctx=512, n_threads=2,
                     logits_all=True, seed=0)
    try:
        rows = []
        for ids in token_ids:
            llm.reset()
            llm.eval(ids)
            rows.append(np.asarray(llm.scores[: len(ids)]).copy())
        return np.concatenate(rows)
    finally:
        llm.close()


def _compare(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, float]:
    """(max absolute logit difference, top-1 agreement)."""
    return float(np.abs(ours - theirs).max()), float((ours.argmax(-1) == theirs.argmax(-1)).mean())


def _top1_where_decided(ours: np.ndarray, theirs: np.ndarray, margin: float) -> float:
    """Top-1 agreement at the positions where ``theirs`` leads its runner-up by more than ``margin``: a near tie
    of a random model (two logits 0.001 apart) may fall either way under any rounding."""
    top_two = np.sort(theirs, axis=-1)[..., -2:]
    decided = (top_two[..., 1] - top_two[..., 0]) > margin
    assert decided.mean() > 0.5, "the probe should mostly have clear winners"
    return float((ours.argmax(-1) == theirs.argmax(-1))[decided].mean())


@pytest.mark.parametrize("family, rslora", [
    ("llama", False),  # Q/K rows permuted
    ("qwen2", False),  # not permuted, and q/k/v biases
    ("qwen2", True),  # rank-stabilised scaling (alpha/√r), carried in the file's alpha
])
def test_base_plus_adapter_matches_the_merged_gguf(family, rslora, project, make_run, tiny_model, tiny_gguf, tmp_path):
    import gguf
    from transformers import AutoTokenizer

    run_dir = make_run(project, family, rslora=rslora)  # random, non-zero LoRA on every projection
    base = tiny_model(family)
    adapter = write_lora_gguf(run_dir / "adapter", base, tmp_path / "adapter.gguf")
    merged = write_gguf(merge_run(run_dir, tmp_path / "merged"), tmp_path / "merged-f16.gguf")

    reader = gguf.GGUFReader(adapter)
    assert reader.get_field("general.type").contents() == "adapter"
    assert reader.get_field("adapter.type").contents() == "lora"
    assert reader.get_field("adapter.lora.alpha").contents() == pytest.approx(16.0 * (8 ** 0.5 if rslora else 1))
    shapes = {t.name: tuple(int(n) for n in t.shape) for t in reader.tensors}  # GGUF order: columns first
    assert shapes["blk.0.attn_q.weight.lora_a"] == (256, 8) and shapes["blk.0.attn_q.weight.lora_b"] == (8, 256)
    assert shapes["blk.3.ffn_down.weight.lora_a"] == (512, 8) and shapes["blk.3.ffn_down.weight.lora_b"] == (8, 256)
    assert len(shapes) == 4 * 7 * 2

    tokenizer = AutoTokenizer.from_pretrained(base)
    token_ids = [tokenizer.encode(text) for text in PROBE_TEXTS]
    with_adapter = _logits(tiny_gguf(family, "f16"), token_ids, adapter)
    merged_logits = _logits(merged, token_ids)
    diff, top1 = _compare(with_adapter, merged_logits)
    base_diff, base_top1 = _compare(_logits(tiny_gguf(family, "f16"), token_ids), with_adapter)
    print(f"{family}: base+adapter vs merged F16 GGUF: max logit diff {diff:.4f}, top-1 {top1:.1%}; "
          f"base alone vs base+adapter: max logit diff {base_diff:.2f}, top-1 {base_top1:.1%}")
    assert diff < 0.03  # F16 rounding of the merged weights (rsLoRA, larger updates: 0.017)
    assert top1 >= 0.99 and _top1_where_decided(with_adapter, merged_logits, 2 * diff) == 1.0
    assert base_diff > 0.5 and base_top1 < 0.5  # the adapter visibly changes the model


def test_export_writes_a_verified_lora_adapter(project, make_run, capsys):
    make_run(project, "qwen2")
    code = main(["export", "-p", str(project.root), "--formats", "q8_0,lora"])
    assert code == 0
    out = capsys.readouterr().out
    export_dir = project.runs_dir / "run-1" / "export"
    entry = read_manifest(export_dir)["files"]["lora"]
    report = entry["verification"]
    assert entry["ready"] and entry["file"] == "doctune-run-1-lora.gguf"
    assert report["checks"]["top1"]["agreement"] >= 0.99 and report["checks"]["tokenizer"]["passed"]
    base = str(adapter_base(export_dir, entry))
    assert not Path(entry["base_gguf"]).is_absolute()  # the project folder may be moved
    assert base.endswith("base-f16.gguf") and str(project.cache_dir) in base and Path(base).is_file()
    assert ready_gguf(project, fmt="lora") == export_dir / "doctune-run-1-lora.gguf"
    assert f'lora_path={str(export_dir / "doctune-run-1-lora.gguf")!r}' in out and "--lora" in out
    assert f"FROM {base}\n  ADAPTER {export_dir / 'doctune-run-1-lora.gguf'}" in out
    assert "FROM ./doctune-run-1-q8_0.gguf" in (export_dir / "Modelfile").read_text()
    assert "LoRA adapter, checked applied to" in (export_dir / "verification.txt").read_text()
    modelfile = (export_dir / "Modelfile").read_text()
    assert main(["export", "-p", str(project.root), "--formats", "lora"]) == 0  # the adapter again, alone
    assert (export_dir / "Modelfile").read_text() == modelfile  # the q8_0 file is still ready: its Modelfile stays
    assert "doctune-run-1-q8_0.gguf" in (export_dir / "USAGE.txt").read_text()
    Path(base).unlink()  # the cache was cleared: the adapter alone is of no use
    assert ready_gguf(project, fmt="lora") is None


def test_a_wrongly_permuted_adapter_fails_verification_and_is_not_ready(project, make_run, monkeypatch):
    import doctune.core.export.lora_gguf as lora_gguf

    make_run(project, "llama")
    permuted_heads = lora_gguf.permuted_heads
    monkeypatch.setattr(lora_gguf, "permuted_heads", lambda *args: None)  # the mistake a Llama adapter must not have
    assert main(["export", "-p", str(project.root), "--formats", "lora"]) == 2
    export_dir = project.runs_dir / "run-1" / "export"
    entry = read_manifest(export_dir)["files"]["lora"]
    assert not entry["ready"] and "next-token agreement" in entry["verification"]["problems"][0]
    assert ready_gguf(project, fmt="lora") is None
    assert not (export_dir / "Modelfile").exists() and not (export_dir / "doctune-run-1-f16.gguf").exists()

    monkeypatch.setattr(lora_gguf, "permuted_heads", permuted_heads)
    assert main(["export", "-p", str(project.root), "--formats", "lora"]) == 0
    assert read_manifest(export_dir)["files"]["lora"]["ready"]


def test_an_adapter_that_trains_embeddings_is_refused(project, make_run, capsys):
    run_dir = make_run(project, "qwen2", steps=1)  # LoRA plus embeddings and output layer trained in full
    code = main(["export", "-p", str(project.root), "--formats", "lora"])
    assert code == 1
    err = capsys.readouterr().err
    assert "modules_to_save" in err and "merged GGUF" in err
    assert not (run_dir / "export").exists()  # refused before anything was merged or written

    # Asked for beside merged formats (e.g. from [export] formats), the adapter is skipped and the rest exported.
    assert main(["export", "-p", str(project.root), "--formats", "q8_0,lora", "--events", "jsonl"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert any(event["event"] == "warning" and "No LoRA adapter file" in event["message"]
               and "modules_to_save" in event["message"] for event in events)
    files = read_manifest(run_dir / "export")["files"]
    assert files["q8_0"]["ready"] and "lora" not in files
    assert (run_dir / "export" / "Modelfile").exists()


@pytest.mark.parametrize("setting, words", [
    ({"use_dora": True}, "DoRA"),
    ({"lora_bias": True}, "biases"),
    ({"rank_pattern": {"q_proj": 4}}, "rank per module"),
    ({"peft_type": "IA3"}, "not LoRA"),
])
def test_adapter_settings_llama_cpp_cannot_express_are_refused(tmp_path, setting, words):
    with pytest.raises(LoraAdapterUnsupported, match=words) as raised:
        check_config_expressible(tmp_path, {"peft_type": "LORA", "r": 8, "lora_alpha": 16, **setting})
    assert "merged GGUF" in raised.value.hint


def test_rslora_scaling_travels_in_the_alpha():
    from doctune.core.export.lora_gguf import file_alpha

    assert file_alpha({"r": 16, "lora_alpha": 32, "use_rslora": True}) == pytest.approx(128.0)  # 128/16 = 32/√16
    assert file_alpha({"r": 16, "lora_alpha": 32}) == 32.0
