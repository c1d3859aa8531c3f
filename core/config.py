"""Settings of one project, stored as ``doctune.toml`` in its folder.

Each pipeline step owns one section. Every field has a default, a type and a
description, so a new project needs no editing and a wrong value is reported in
plain words. ``schema_version`` says which version of this layout a file
follows; a file from a newer DocTune is refused rather than misread.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from doctune.core.errors import UserError

SCHEMA_VERSION = 1


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ProjectInfo(Section):
    name: str = Field("", description="Display name of the project.")


class PrivacySettings(Section):
    offline: bool = Field(False, description="Never download anything and never contact a non-local server.")
    allow_remote_teacher: bool = Field(
        False, description="Allow sending document text to a teacher endpoint that is not on this machine."
    )


class IngestSettings(Section):
    chunk_tokens: int = Field(
        512, ge=32, le=8192,
        description="Largest chunk in tokens (counted with the bundled embedder's tokenizer); chunks end at "
        "headings and paragraph ends where possible.",
    )
    chunk_overlap: int = Field(
        64, ge=0, le=2048, description="Tokens shared by consecutive chunks; less than half of chunk_tokens."
    )


class TeacherSettings(Section):
    kind: Literal["local", "openai", "lab"] = Field(
        "local", description="A local GGUF file, an OpenAI-compatible endpoint, or the knowledge lab's teacher "
        "(writes from the lab world's documents without a model: the lab and the offline check).",
    )
    model_path: str = Field("", description="Local teacher: path of a GGUF file.")
    hf_repo: str = Field("", description="Local teacher: Hugging Face repo to download the GGUF from.")
    hf_file: str = Field("", description="Local teacher: file name inside hf_repo.")
    n_ctx: int = Field(4096, ge=256, description="Local teacher: context window in tokens.")
    n_gpu_layers: int = Field(-1, description="Local teacher: layers offloaded to the GPU (-1: all that fit).")
    parallel: int = Field(
        8, ge=1, le=64,
        description="Local teacher: sequences generated at once in one llama.cpp context (1: one at a time). "
        "The KV cache holds n_ctx tokens for each, so its memory grows with this number.",
    )
    base_url: str = Field("", description="Endpoint teacher: base URL, e.g. http://127.0.0.1:11434/v1.")
    base_urls: list[str] = Field(
        default_factory=list,
        description="Endpoint teacher: several servers of the same model (vLLM or llama.cpp servers on other GPUs "
        "or hosts), e.g. [\"http://10.0.0.5:8000/v1\", \"http://10.0.0.6:8000/v1\"]; requests are spread over "
        "them (and base_url, if set), concurrency at a time on each, and a server that stops answering is left "
        "out while the others take its work.",
    )
    model: str = Field("", description="Endpoint teacher: model name.")
    api_key_env: str = Field("", description="Endpoint teacher: environment variable holding the API key.")
    concurrency: int = Field(4, ge=1, le=256, description="Endpoint teacher: requests in flight at once on each server.")
    timeout_s: float = Field(120.0, gt=0, description="Endpoint teacher: seconds before a request times out.")
    max_retries: int = Field(5, ge=0, le=50, description="Endpoint teacher: retries of a failed request.")
    retry_base_s: float = Field(1.0, gt=0, description="Endpoint teacher: first retry delay; doubles each retry (with jitter).")
    retry_max_s: float = Field(60.0, gt=0, description="Endpoint teacher: longest delay between retries.")
    probe_after_s: float = Field(
        30.0, gt=0, description="Endpoint teacher with several servers: seconds a server that stopped answering is "
        "left out before a request tries it again (doubling while it keeps failing, up to ten times as long).",
    )
    structured_output: Literal["auto", "json_schema", "llama_cpp", "json_object", "off"] = Field(
        "auto",
        description="Endpoint teacher: how a JSON schema is sent (auto: try OpenAI json_schema, then the "
        "llama.cpp server form, else plain text with JSON extraction).",
    )
    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int = Field(1024, ge=16, description="Hard limit of generated tokens per call.")
    price_in_per_mtok: float = Field(0.0, ge=0, description="Price per million input tokens (for estimates).")
    price_out_per_mtok: float = Field(0.0, ge=0, description="Price per million output tokens (for estimates).")

    @field_validator("base_url")
    @classmethod
    def _one_url(cls, value: str) -> str:
        return check_http_url(value) if value.strip() else ""

    @field_validator("base_urls")
    @classmethod
    def _urls(cls, values: list[str]) -> list[str]:
        return [check_http_url(value) for value in values]

    def endpoint_urls(self) -> list[str]:
        """The endpoint teacher's servers: base_url (if set), then base_urls, each once."""
        urls = [self.base_url, *self.base_urls] if self.base_url else list(self.base_urls)
        return list(dict.fromkeys(url.rstrip("/") for url in urls))


def check_http_url(value: str) -> str:
    """``value`` stripped, if it is an http(s) URL with a host; else a ValueError that shows the form wanted."""
    from urllib.parse import urlparse

    text = value.strip()
    try:
        parts = urlparse(text)
        parts.port  # noqa: B018 (raises ValueError on a port that is no number)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} is not an http(s) address such as http://127.0.0.1:8000/v1")
    return text


class SynthSettings(Section):
    recipes: dict[str, float] = Field(
        default_factory=lambda: {"qa": 1.0, "focal": 1.0}, description="Recipe name → weight."
    )
    per_chunk: int = Field(2, ge=1, le=100, description="Items generated per chunk and recipe (before weighting), "
                                                        "when no amplification is set.")
    amplification: float = Field(
        16.0, ge=0, le=10000,
        description="Synthetic tokens to generate per source token, shared among the recipes by weight; planning "
                    "turns it into items per chunk (0: per_chunk items per chunk and recipe). 16: where the "
                    "knowledge lab's student first learned its documents (README); the papers DocTune follows "
                    "needed ~100x or more to beat retrieval.",
    )
    token_budget: int = Field(0, ge=0, description="Stop after this many teacher output tokens (0: no limit).")
    seed: int = Field(0, description="Seed for reproducible sampling.")
    eval_mc_per_chunk: int = Field(1, ge=0, description="Held-out multiple-choice questions per chunk.")
    eval_open_per_chunk: int = Field(1, ge=0, description="Held-out open questions per chunk.")
    max_question_chars: int = Field(300, ge=20, le=2000, description="Longest question a teacher may write.")
    max_answer_chars: int = Field(600, ge=20, le=4000, description="Longest answer or explanation a teacher may write.")
    max_document_chars: int = Field(
        1500, ge=100, le=8000,
        description="Longest synthetic document (llama.cpp grammars grow with it; keep it under ~2000).",
    )
    min_document_chars: int = Field(100, ge=1, description="Shorter synthetic documents are dropped.")
    grounding: Literal["terms", "judge", "off"] = Field(
        "terms", description="Grounding check: key terms of the answer must occur in the source, or ask the teacher."
    )
    grounding_min: float = Field(0.5, ge=0, le=1, description="Share of an answer's key terms that must be in its source.")
    near_duplicate: float = Field(0.7, gt=0, le=1, description="Word-trigram Jaccard similarity above which an item is a near-duplicate.")
    leakage_threshold: float = Field(
        0.6, gt=0, le=1, description="Word similarity above which an eval question counts as seen in training."
    )
    entigraph_window_tokens: int = Field(2048, ge=128, description="EntiGraph: longest span of a document read at once.")
    entigraph_max_entities: int = Field(12, ge=2, le=50, description="EntiGraph: entities kept per window.")
    entigraph_triples: bool = Field(True, description="EntiGraph: also write about triples of entities.")


class StudentSettings(Section):
    model: str = Field("", description="Hugging Face id or local folder of the student model.")
    revision: str = Field("", description="Hub revision (branch, tag or commit) of a Hugging Face student; empty: main.")
    trust_remote_code: bool = Field(False, description="Run model code shipped with the checkpoint (unsafe).")
    brought: dict[str, Any] = Field(
        default_factory=dict,
        description="Training settings the student's folder recommended when it was chosen (written by DocTune): "
                    "choosing another student puts those still unchanged back to DocTune's defaults.",
    )


class TrainSettings(Section):
    qa_to_document_ratio: float = Field(1.0, gt=0, description="Tokens of QA items per token of document items.")
    objective: Literal["sft", "distill", "mix"] = Field(
        "sft", description="How question-answer items teach: sft, next-token loss on the answer; distill, the "
                           "answer's token distribution of the same model with the source passage in its prompt "
                           "(context distillation); mix, both.")
    open_book_fraction: float = Field(
        0.0, ge=0, le=1, description="Share of question-answer items also trained open book: with their source "
                                     "passage among other documents' passages, in the prompt that chat with "
                                     "retrieval uses, so the tuned model keeps reading (RAFT). Costs training time.")
    open_book_distractors: int = Field(2, ge=0, le=16, description="Other documents' passages shown with an "
                                                                   "open-book item's own source.")
    open_book_source_first: float = Field(
        0.0, ge=0, le=1, description="Share of open-book items that show their source first, where the search "
                                     "ranks a passage that answers the question; the others show it at a random "
                                     "place among the other passages.")
    replay_fraction: float = Field(0.1, ge=0, lt=1, description="Fraction of training tokens from replay answers.")
    replay_prompts: int = Field(200, ge=1, le=10000, description="Most bundled general prompts the base student answers for replay (only as many as the replay share of the mix needs are answered).")
    replay_max_new_tokens: int = Field(160, ge=8, le=2048, description="Longest replay answer, in tokens.")
    lora_rank: int = Field(16, ge=1, le=1024, description="LoRA rank.")
    lora_alpha: float = Field(32.0, gt=0, description="LoRA alpha (scaling = alpha / rank).")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["all-linear"],
        description="Modules LoRA adapts: 'all-linear' or names such as q_proj, v_proj.",
    )
    train_embeddings: bool = Field(
        False, description="Also train the token embeddings and output layer in full (helps tiny or new-vocabulary models)."
    )
    qlora: bool = Field(False, description="Load the student in 4 bits (CUDA with bitsandbytes only).")
    learning_rate: float = Field(2e-4, gt=0, le=1, description="Peak learning rate.")
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field("cosine", description="Learning-rate schedule after warm-up.")
    warmup_ratio: float = Field(0.03, ge=0, le=0.5, description="Share of the steps spent warming up the learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, ge=0, description="Gradient clipping norm (0: no clipping).")
    epochs: float = Field(3.0, gt=0, description="Passes over the training mix (ignored when max_steps > 0).")
    max_steps: int = Field(0, ge=0, description="Stop after this many optimizer steps (0: use epochs).")
    batch_tokens: int = Field(4096, ge=64, description="Tokens per optimizer step and process (sequences packed together).")
    max_seq_len: int = Field(1024, ge=16, description="Longest training sequence in tokens; longer items are truncated.")
    seed: int = Field(0, description="Seed for data order and initialisation.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations to save memory (slower).")
    checkpoint_every: int = Field(100, ge=1, description="Save a resumable checkpoint every N steps.")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="Where to train; auto: CUDA, else MPS, else CPU.")
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="Compute precision; auto: bf16 on CUDA where supported (else fp16), fp32 on MPS and CPU."
    )
    cpu_threads: int = Field(0, ge=0, le=1024, description="Threads per process when training on the CPU (0: PyTorch's default).")


class ExportSettings(Section):
    formats: list[str] = Field(
        default_factory=lambda: ["f16", "q8_0", "q4_k_m"],
        description="GGUF formats to write; 'lora' adds the run's adapter as a GGUF LoRA adapter for llama.cpp.",
    )
    min_top1: dict[str, float] = Field(
        default_factory=lambda: {"f16": 0.99, "q8_0": 0.9, "q4_k_m": 0.45, "default": 0.4},
        description="Least next-token agreement with the merged model for a file to be marked ready, per format "
                    "('default' for the others; 'lora', the adapter on the F16 base, defaults to f16's). Quantized "
                    "thresholds are set for the worst case, tiny random models whose predictions are nearly flat; "
                    "trained models agree far more.",
    )
    answer_budget: int = Field(
        64, ge=8, le=4096,
        description="Tokens within which the model's own chat answer must end for the end-of-turn check to apply; "
                    "a file must then end its answer within twice as many.",
    )
    pretokenizer_fallback: str = Field(
        "", description="llama.cpp pre-tokenizer name to write when the tokenizer's is not recognised "
                        "(e.g. 'gpt-2'); empty: stop with an error instead.",
    )
    merge_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Precision of the merged model's saved weights; auto: the base model's own.",
    )


class RagSettings(Section):
    embedder: str = Field(
        "bundled:all-MiniLM-L6-v2",
        description="Sentence-transformers model name or folder; 'bundled:all-MiniLM-L6-v2' is the offline default.",
    )
    reranker: str = Field("", description="Optional cross-encoder model (name or folder) reranking the fused results.")
    k: int = Field(8, ge=1, le=100, description="Chunks retrieved per question.")
    candidates: int = Field(50, ge=1, le=1000, description="Results taken from each of vector and full-text search before fusion.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal rank fusion constant (higher: flatter weighting of ranks).")
    embed_batch: int = Field(64, ge=1, le=4096, description="Chunks embedded per batch while indexing.")
    ann_min_rows: int = Field(
        200_000, ge=0, description="Chunks from which doctune index builds an approximate vector index (IVF-SQ) that "
                                   "replaces the exact in-memory vector scan (0: always exact). Measured on 2 cores: "
                                   "the exact scan costs ~1 ms per 10k chunks and holds ~1.6 KB per chunk in memory; "
                                   "the index answers in ~20-30 ms with recall@10 >= 0.95 (bench/rag.py).",
    )
    n_ctx: int = Field(4096, ge=128, description="Chat context window in tokens (capped by the model's own).")
    max_answer_tokens: int = Field(512, ge=8, description="Hard limit of tokens in one answer; reserved in the context.")
    temperature: float = Field(0.0, ge=0, le=2, description="Chat sampling temperature (0: greedy, reproducible).")
    n_gpu_layers: int = Field(-1, description="Chat model layers offloaded to the GPU when there is one (-1: all).")
    gguf_format: str = Field("q8_0", description="GGUF format of the base and tuned models used by ask and compare.")


class EvalSettings(Section):
    systems: list[str] = Field(
        default_factory=lambda: ["base", "base+rag", "tuned", "tuned+rag"], description="Systems to score."
    )
    compare: list[str] = Field(
        default_factory=lambda: ["tuned:base+rag", "tuned+rag:base+rag", "tuned:base"],
        description="Pairs 'A:B' compared with paired tests (McNemar exact, paired bootstrap).",
    )
    judge_attempts: int = Field(3, ge=1, le=10, description="Tries per open answer before it is recorded as unjudged.")
    judge_max_tokens: int = Field(256, ge=32, description="Hard limit of tokens in one verdict.")
    mc_answer_tokens: int = Field(32, ge=1, description="Hard limit of tokens of a generated multiple-choice answer.")
    open_answer_tokens: int = Field(256, ge=8, description="Hard limit of tokens of a generated open answer.")


class ProjectConfig(Section):
    schema_version: int = Field(SCHEMA_VERSION, ge=1, strict=True,
                                description="Layout version of this file (a whole number, not text).")
    project: ProjectInfo = Field(default_factory=ProjectInfo)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    teacher: TeacherSettings = Field(default_factory=TeacherSettings)
    synth: SynthSettings = Field(default_factory=SynthSettings)
    student: StudentSettings = Field(default_factory=StudentSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    export: ExportSettings = Field(default_factory=ExportSettings)
    rag: RagSettings = Field(default_factory=RagSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)


class ConfigError(ValueError):
    """A settings file with problems; ``problems`` lists each in plain words."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{source} has {len(problems)} problem(s):\n{lines}")


UserError.register(ConfigError)


def _describe(error: dict) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown setting '{where}' (remove it or check its spelling)"
    if kind == "missing":
        return f"missing setting '{where}'"
    given = error.get("input")
    return f"'{where}': {error['msg'].lower()} (found {given!r})"


def parse_config(data: dict[str, Any], source: str = "doctune.toml") -> ProjectConfig:
    """Validate raw settings; raise ``ConfigError`` listing every problem at once."""
    version = data.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ConfigError(source, [f"'schema_version' must be a whole number such as {SCHEMA_VERSION} "
                                   f"(found {version!r}); write schema_version = {SCHEMA_VERSION} without quotes"])
    if version > SCHEMA_VERSION:
        raise ConfigError(
            source,
            [
                f"schema version {version} is newer than this DocTune understands ({SCHEMA_VERSION}); "
                "update DocTune to open this project"
            ],
        )
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_describe(error) for error in exc.errors()]) from None


def config_to_dict(config: ProjectConfig) -> dict[str, Any]:
    return config.model_dump(mode="json")
