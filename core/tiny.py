"""Tiny models built offline: a byte-level BPE tokenizer and small random LMs.

Used by the tests (through one cached session fixture) and by the offline
pipeline check, where no model can be downloaded. The models answer nonsense
until trained; they exist to exercise the machinery end to end on a CPU.

The tokenizer is a GPT-2 style byte-level BPE trained with ``tokenizers`` on
text bundled in ``resources/`` (ChatML special tokens and chat template), so
the GGUF pre-tokenizer for it is ``gpt-2``. Embedding rows are padded above the
tokenizer's size, as real checkpoints do.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from doctune.core.fsio import atomic_write_text
from doctune.core.resources import resource_path

Family = Literal["llama", "qwen2", "qwen3", "mistral"]
FAMILIES: tuple[Family, ...] = ("llama", "qwen2", "qwen3", "mistral")

BUILDER_VERSION = 1
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
VOCAB_TARGET = 4096
VOCAB_PAD_MULTIPLE = 64

# Sizes per family: (hidden, layers, heads, kv_heads, ffn). ~3M parameters.
TINY_SIZES = {"hidden": 256, "layers": 4, "heads": 4, "kv_heads": 2, "ffn": 512}


def tokenizer_training_files() -> list[Path]:
    """The bundled text the tiny tokenizer learns from (sorted, so it is reproducible)."""
    files = [resource_path("tiny/corpus.txt")]
    sample = resource_path("sample/docs")
    if sample.is_dir():
        files += sorted(sample.glob("*.md"))
    return [f for f in files if f.is_file()]


def _fingerprint(*parts: object) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(repr(part).encode())
    for file in tokenizer_training_files():
        digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def build_tokenizer(out_dir: str | Path) -> Path:
    """Train the byte-level BPE and save it as a Hugging Face tokenizer folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_TARGET,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train([str(f) for f in tokenizer_training_files()], trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        model_max_length=2048,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(out)
    return out


def padded_vocab_size(tokenizer_size: int) -> int:
    return -(-tokenizer_size // VOCAB_PAD_MULTIPLE) * VOCAB_PAD_MULTIPLE


def tiny_config(family: Family, vocab_size: int, eos_id: int, pad_id: int | None, sizes: dict[str, int] | None = None):
    """A transformers config of the family, a few million parameters (``sizes``: default ``TINY_SIZES``)."""
    import transformers

    s = sizes or TINY_SIZES
    common: dict[str, Any] = dict(  # settings of every family, of several types
        vocab_size=vocab_size,
        hidden_size=s["hidden"],
        intermediate_size=s["ffn"],
        num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"],
        num_key_value_heads=s["kv_heads"],
        max_position_embeddings=2048,
        rms_norm_eps=1e-6,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        bos_token_id=None,
    )
    if family == "llama":
        return transformers.LlamaConfig(**common, tie_word_embeddings=False,
                                        rope_parameters={"rope_type": "default", "rope_theta": 500000.0})
    if family == "qwen2":
        return transformers.Qwen2Config(**common, tie_word_embeddings=True,
                                        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})
    if family == "qwen3":
        return transformers.Qwen3Config(**common, head_dim=s["hidden"] // s["heads"], tie_word_embeddings=True,
                                        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})
    if family == "mistral":
        return transformers.MistralConfig(**common, tie_word_embeddings=False, sliding_window=None,
                                          rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    raise ValueError(f"unknown tiny family {family!r}; choose one of {', '.join(FAMILIES)}")


def build_model(family: Family, out_dir: str | Path, tokenizer_dir: str | Path, seed: int = 0) -> Path:
    """Save a randomly initialised causal LM of ``family`` with the tiny tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    out = Path(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = tiny_config(family, padded_vocab_size(len(tokenizer)), eos_id, pad_id)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id, bos_token_id=None)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def ensure_tiny_model(family: Family, cache_root: str | Path, seed: int = 0) -> Path:
    """The folder of a tiny ``family`` model under ``cache_root``, built once.

    The folder name carries a fingerprint of the builder and its training text,
    so a change to either builds a fresh model instead of reusing a stale one.
    """
    root = Path(cache_root)
    key = _fingerprint(BUILDER_VERSION, TINY_SIZES, CHATML_TEMPLATE, VOCAB_TARGET)
    tokenizer_dir = root / f"tokenizer-{key}"
    if not (tokenizer_dir / ".complete").exists():
        build_tokenizer(tokenizer_dir)
        atomic_write_text(tokenizer_dir / ".complete", key)
    model_dir = root / f"{family}-{key}-s{seed}"
    if not (model_dir / ".complete").exists():
        build_model(family, model_dir, tokenizer_dir, seed)
        atomic_write_text(model_dir / ".complete", json.dumps({"family": family, "key": key, "seed": seed}))
    return model_dir


SENTENCEPIECE_SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% else %}{{ ' ' + message['content'] + eos_token }}{% endif %}"
    "{% endfor %}"
)
SENTENCEPIECE_VOCAB_TARGET = 2000  # with the 256 byte tokens: 2256, padded to 2304 rows
SENTENCEPIECE_ALPHABET_LIMIT = 100  # rarer characters (é, emoji) take the byte fallback


def build_sentencepiece_tokenizer(out_dir: str | Path) -> Path:
    """A Llama 2 / Mistral v0.1 style tokenizer: BPE with ``<0xXX>`` byte fallback and ▁ for spaces.

    Trained on the bundled text with words kept apart (as SentencePiece does),
    then laid out like Llama 2's tokenizer.json: ``<unk>``, ``<s>``, ``</s>``,
    the 256 byte tokens, the learned pieces; BOS added; [INST] chat template.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = SENTENCEPIECE_SPECIAL_TOKENS
    spaces_to_marks = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    learner = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    learner.normalizer = spaces_to_marks
    learner.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="never", split=True)
    learner.train([str(f) for f in tokenizer_training_files()], trainers.BpeTrainer(
        vocab_size=SENTENCEPIECE_VOCAB_TARGET, special_tokens=specials,
        limit_alphabet=SENTENCEPIECE_ALPHABET_LIMIT, show_progress=False))
    learned = json.loads(learner.to_str())["model"]
    pieces = sorted((p for p in learned["vocab"] if p not in specials), key=learned["vocab"].get)
    vocab = {p: i for i, p in enumerate(specials + [f"<0x{b:02X}>" for b in range(256)] + pieces)}
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in learned["merges"]]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.normalizer = spaces_to_marks
    tokenizer.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                           decoders.Strip(" ", 1, 0)])
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=2048, clean_up_tokenization_spaces=False)
    fast.chat_template = MISTRAL_TEMPLATE
    out = Path(out_dir)
    fast.save_pretrained(out)
    return out


def build_sentencepiece_model(family: Family, out_dir: str | Path, seed: int = 0) -> Path:
    """A tiny random ``family`` model with the SentencePiece-style tokenizer (BOS ``<s>``, EOS ``</s>``)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    out = build_sentencepiece_tokenizer(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(out)
    bos_id, eos_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    config = tiny_config(family, padded_vocab_size(len(tokenizer)), eos_id, pad_id=None)
    config.bos_token_id = bos_id
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(bos_token_id=bos_id, eos_token_id=eos_id)
    model.save_pretrained(out, safe_serialization=True)
    return out


# A real tokenizer's vocabulary is large (32k–152k rows); a narrow model keeps the embeddings small.
REAL_TOKENIZER_SIZES = {"hidden": 64, "layers": 2, "heads": 2, "kv_heads": 1, "ffn": 128}


def build_model_with_tokenizer(family: Family, tokenizer_dir: str | Path, out_dir: str | Path, seed: int = 0) -> Path:
    """A tiny random ``family`` model around a real tokenizer (its files copied verbatim, its full vocabulary).

    The embedding rows cover every id the tokenizer can produce (padded above, as
    real checkpoints are); BOS/EOS/pad ids come from the tokenizer. A ``llama``
    family folder declares ``model_type: llama``, so transformers loads a
    SentencePiece tokenizer there as ``LlamaTokenizer``, as it does for Llama 2.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from doctune.core.export.merge import copy_tokenizer_files

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    copy_tokenizer_files(Path(tokenizer_dir), out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    top_id = max(tokenizer.get_vocab().values()) + 1
    config = tiny_config(family, padded_vocab_size(max(len(tokenizer), top_id)), tokenizer.eos_token_id,
                         pad_id=tokenizer.pad_token_id, sizes=REAL_TOKENIZER_SIZES)
    config.bos_token_id = tokenizer.bos_token_id
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id,
                                               eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(out, safe_serialization=True)
    return out


def random_teacher_settings(config: Any) -> None:
    """Settings for an untrained tiny teacher (the tests' local teacher): a random
    teacher writes every string to its length limit, so small limits keep its calls short and complete; and its
    words come from nowhere, so grounding would filter every item (the run stopped at Train with 96 of 100 items
    dropped)."""
    config.teacher.n_ctx = 2048  # the judge reads a passage and an answer: 1024 overflowed
    config.teacher.max_tokens = 512
    synth = config.synth
    synth.per_chunk, synth.amplification = 1, 0.0  # one item per passage and kind: a random teacher is slow
    synth.max_question_chars, synth.max_answer_chars = 60, 120
    synth.max_document_chars, synth.min_document_chars = 300, 20
    synth.grounding = "off"
