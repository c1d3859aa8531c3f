"""The training run: settings → data plan → LoRA student → steps → adapter.

Runs the same on one process or under ``torchrun`` (each process trains on
its own packed rows; gradients are averaged by DDP; only rank 0 writes files
and events).
"""
from __future__ import annotations

import hashlib
import math
import os
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doctune.core.config import StudentSettings, TrainSettings
from doctune.core.events import Cancelled, CancelToken, Events
from doctune.core.fsio import JsonlAppender
from doctune.core.items import LoadReport, TrainingItem, load_training_items_report, read_items_file
from doctune.core.project import Project
from doctune.core.records import (
    COMPLETE,
    MetricRecord,
    RunConfig,
    RunData,
    RunLayout,
    RunSummary,
    append_records,
    read_records,
    write_records,
)
from doctune.core.train import checkpoints
from doctune.core.train import data as packing
from doctune.core.train.device import Placement, check_qlora, choose_placement
from doctune.core.train.errors import TrainError
from doctune.core.train.params import TrainParams, TrainResult, resolve_settings
from doctune.core.train.replay import replay_items
from doctune.core.train.student import resolve_student, trusted_now

EMBEDDING_MODULES = ["embed_tokens", "lm_head"]


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Dist:
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def start(self, placement: Placement) -> None:
        import torch.distributed as tdist

        if self.active and not tdist.is_initialized():
            tdist.init_process_group("nccl" if placement.kind == "cuda" else "gloo")

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as tdist

            tdist.barrier()

    def broadcast(self, value: Any) -> Any:
        if not self.active:
            return value
        import torch.distributed as tdist

        box = [value]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def any_true(self, flag: bool) -> bool:
        if not self.active:
            return flag
        import torch
        import torch.distributed as tdist

        tensor = torch.tensor([1.0 if flag else 0.0])
        tdist.all_reduce(tensor)
        return bool(tensor.item() > 0)

    def mean(self, value: float) -> float:
        if not self.active:
            return value
        import torch
        import torch.distributed as tdist

        tensor = torch.tensor([value], dtype=torch.float64)
        tdist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def stop(self) -> None:
        if self.active:
            import torch.distributed as tdist

            if tdist.is_initialized():
                tdist.destroy_process_group()


# ----- inputs --------------------------------------------------------------------

def _load_items(project: Project, items_file: Path | None, events: Events) -> list[TrainingItem]:
    if items_file is not None:
        if not items_file.is_file():
            raise TrainError(f"The items file {items_file} does not exist.",
                             "Pass a JSONL file of training items (see doctune.core.items).")
        report: LoadReport = read_items_file(items_file)
        source = str(items_file)
    else:
        report = load_training_items_report(project)
        source = str(project.layout.items)
    for problem in report.problems:
        events.warning(f"Skipped item {problem.id or '(no id)'} (line {problem.line}): {problem.reason}",
                       item=problem.id, path=source)
    if report.problems:
        events.warning(f"{len(report.problems)} item(s) failed the schema and were skipped",
                       skipped=len(report.problems))
    if not report.items:
        raise TrainError(f"There is nothing to train on: no valid training items in {source}.",
                         "Generate items with 'doctune synth', or pass --items FILE with a JSONL of items.",
                         window_hint="Press Generate on the Synthesize page, then Train on the Train page again.")
    return report.items


def _settings(project: Project, params: TrainParams) -> tuple[StudentSettings, TrainSettings, str, Path | None]:
    """Settings, run id and items file: from the project and overrides, or from the run being resumed."""
    if params.resume:
        run_dir = checkpoints.resume_dir(project, params.resume)
        saved = checkpoints.read_run_config(run_dir)
        if (summary := checkpoints.load_summary(run_dir)) is not None and summary.complete:
            raise TrainError(f"Run {params.resume} is already complete; there is nothing to resume.",
                             "Start a new run with 'doctune train'.",
                             window_hint="Press Train on the Train page to start a new run.")
        items_file = Path(saved.items_file) if saved.items_file else None
        student = _trusted_as_now(StudentSettings.model_validate(saved.student), project.config.student)
        return student, TrainSettings.model_validate(saved.train), params.resume, items_file
    student, train = resolve_settings(project.config.student, project.config.train, params)
    return student, train, checkpoints.new_run_id(), params.items_file.resolve() if params.items_file else None


def _trusted_as_now(saved: StudentSettings, current: StudentSettings) -> StudentSettings:
    """The resumed run's student, trusted to run its own code only when the user's current settings trust this
    very student: a run's configuration is a file in the project (copied, downloaded, crafted), never the
    user's consent."""
    return saved.model_copy(update={"trust_remote_code": trusted_now(saved.model, saved.revision, current)})


# ----- model -------------------------------------------------------------------

def _load_model(folder: Path, student: StudentSettings, train: TrainSettings, placement: Placement):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=student.trust_remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs: dict[str, Any] = {"use_safetensors": True, "trust_remote_code": student.trust_remote_code,
                              "dtype": placement.torch_dtype, "attn_implementation": "sdpa"}
    if train.qlora:
        import torch
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=placement.torch_dtype,
            bnb_4bit_use_double_quant=True, bnb_4bit_quant_storage=torch.uint8)
        kwargs["device_map"] = {"": placement.device}
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    if not train.qlora:
        model.to(placement.device)
    model.config.use_cache = False
    return model, tokenizer


def _checkpoint_activations(model) -> None:
    """Recompute activations in the backward pass instead of keeping them. transformers 5 calls this activation
    checkpointing (its ``gradient_checkpointing_enable`` alias warns, and goes in v6); older releases have only
    the old name."""
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is None:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})


def _lora(model, train: TrainSettings):
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if train.qlora:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=train.gradient_checkpointing)
    elif train.gradient_checkpointing:
        _checkpoint_activations(model)
        model.enable_input_require_grads()
    targets: Any = "all-linear" if train.target_modules == ["all-linear"] else train.target_modules
    config = LoraConfig(
        r=train.lora_rank, lora_alpha=train.lora_alpha, lora_dropout=train.lora_dropout, target_modules=targets,
        task_type="CAUSAL_LM", modules_to_save=EMBEDDING_MODULES if train.train_embeddings else None,
        ensure_weight_tying=bool(train.train_embeddings and getattr(model.config, "tie_word_embeddings", False)),
    )
    try:
        with warnings.catch_warnings():  # peft 0.21 reads a property transformers 5 has deprecated: not the user's to fix
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model = get_peft_model(model, config)
    except ValueError as exc:
        raise TrainError(f"LoRA cannot be applied with target_modules={train.target_modules}: {exc}",
                         "Use 'all-linear' or module names that exist in this model (q_proj, v_proj, …).") from None
    for param in model.parameters():  # trainable weights in fp32, whatever the compute dtype
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()
    return model


def _optimizer(model, train: TrainSettings, total_steps: int):
    import torch
    from transformers import get_scheduler

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=train.learning_rate, weight_decay=train.weight_decay)
    warmup = math.ceil(train.warmup_ratio * total_steps)
    scheduler = get_scheduler(train.lr_scheduler if train.lr_scheduler != "constant" else "constant_with_warmup",
                              optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)
    return optimizer, scheduler


# ----- data --------------------------------------------------------------------

def _examples(items: list[TrainingItem], tokenizer, train: TrainSettings, events: Events):
    report = packing.tokenize_items(tokenizer, items, train.max_seq_len)
    if report.truncated:
        events.warning(f"{len(report.truncated)} sequence(s) were longer than max_seq_len={train.max_seq_len} "
                       "tokens and were truncated", truncated=len(report.truncated))
    if report.dropped:
        events.warning(f"{len(report.dropped)} item(s) had no answer left after truncation and were skipped",
                       dropped=len(report.dropped))
    by_source: dict[str, list[packing.Example]] = {"qa": [], "document": [], "replay": [], "open_book": []}
    for example in report.examples:
        by_source[example.source].append(example)
    if not by_source["qa"] and not by_source["document"]:
        raise TrainError("No training item fits in max_seq_len with something left to learn.",
                         "Raise [train] max_seq_len.")
    return by_source, report


def _chunk_hits(setup: Setup) -> dict[str, Any]:
    """The project's chunks as sources of a prompt (``Hit``), by chunk id."""
    from doctune.core.rag import Hit
    from doctune.core.store import list_chunks

    return {chunk["id"]: Hit(chunk["id"], chunk["doc_id"], chunk.get("doc_path"), chunk.get("doc_title"),
                             chunk.get("page_start"), chunk.get("page_end"), chunk["text"], 0.0)
            for chunk in list_chunks(setup.project)}


def _with_teacher_views(setup: Setup, examples: list[packing.Example], tokenizer,
                        hits: dict[str, Any]) -> list[packing.Example]:
    """The QA examples, each with its teacher view where its item's chunk (in ``hits``) is still in the project
    (distillation)."""
    items = {item.id: item for item in setup.items}
    out = []
    for example in examples:
        item = items.get(example.item_id)
        source = hits.get(item.chunk_id) if item is not None else None
        if item is not None and source is not None:
            example = packing.with_teacher_view(tokenizer, item, example, source, setup.train.max_seq_len)
        out.append(example)
    viewed = sum(example.teacher_ids is not None for example in out)
    setup.events.log(f"Context distillation ({setup.train.objective}): {viewed} of {len(out)} question-answer "
                     "item(s) learn the answer as the base model gives it with the source passage in its prompt")
    if viewed < len(out):
        setup.events.warning(f"{len(out) - viewed} question-answer item(s) have no teacher view (their chunk is "
                             "gone, the chat has several turns, or it does not fit max_seq_len with its passage); "
                             "they train by next-token loss", without_teacher=len(out) - viewed)
    return out


def _distractors(chunk_ids: list[str], hits: dict[str, Any], oracle, count: int, rng: random.Random) -> list[Any]:
    """``count`` chunks of documents other than the oracle's, drawn by ``rng`` (fewer when the project has fewer)."""
    picked: list[Any] = []
    for chunk_id in rng.sample(chunk_ids, len(chunk_ids)) if count else ():
        if hits[chunk_id].doc_id != oracle.doc_id:
            picked.append(hits[chunk_id])
            if len(picked) == count:
                break
    return picked


def _open_book_examples(setup: Setup, qa: list[packing.Example], tokenizer,
                        hits: dict[str, Any]) -> list[packing.Example]:
    """``open_book_fraction`` of the QA items (drawn by seed) asked with their chunk among distractor chunks of
    other documents (``hits``), as base + RAG asks them (see ``doctune.core.train.data``)."""
    train = setup.train
    items = {item.id: item for item in setup.items}
    candidates = sorted(e.item_id for e in qa if e.item_id in items and items[e.item_id].chunk_id in hits)
    wanted = round(train.open_book_fraction * len(qa))
    chunk_ids = sorted(hits)
    chosen = sorted(candidates, key=lambda item_id: hashlib.sha256(f"{train.seed}:{item_id}".encode()).digest())
    out = []
    for item_id in chosen[:wanted]:
        item = items[item_id]
        oracle = hits[item.chunk_id]
        rng = random.Random(f"{train.seed}:{item_id}:open")
        distractors = _distractors(chunk_ids, hits, oracle, train.open_book_distractors, rng)
        example = packing.open_book_example(tokenizer, item, oracle, distractors, rng=rng,
                                            max_seq_len=train.max_seq_len,
                                            source_first=train.open_book_source_first)
        if example is not None:
            out.append(example)
    others = len({hit.doc_id for hit in hits.values()}) - 1
    shown = min(train.open_book_distractors, max(others, 0))
    setup.events.log(f"Open book: {len(out)} of {len(qa)} question-answer item(s) also learn to answer from their "
                     f"source among up to {shown} passage(s) of other documents, as the chat with retrieval asks")
    if train.open_book_distractors and others < 1 and out:
        setup.events.warning("Open-book items show their source alone: the project has no other document to draw "
                             "other passages from")
    if len(out) < wanted:
        setup.events.warning(f"{wanted - len(out)} item(s) chosen for open-book training could not be (their chunk "
                             "is gone, the chat has several turns or its own system message, or it does not fit "
                             "max_seq_len with its passage)", without_open_book=wanted - len(out),
                             window_message=f"{wanted - len(out)} question-answer item(s) chosen to be trained with "
                                            "their source passage could not be (the passage is gone, the chat has "
                                            "several turns, or it is too long); they train closed book only, and "
                                            "the run on the Train page goes on.")
    return out


def _replay_examples(setup: Setup, model, tokenizer, by_source) -> list[packing.Example]:
    """Replay answers for the replay share of one epoch of this mix, tokenized like the items."""
    train = setup.train
    wanted = packing.replay_tokens_per_epoch(by_source["qa"], by_source["document"],
                                             qa_to_document_ratio=train.qa_to_document_ratio,
                                             replay_fraction=train.replay_fraction,
                                             open_book=by_source["open_book"])
    replay = _replay(setup, model, tokenizer, wanted)
    return packing.tokenize_items(tokenizer, replay, train.max_seq_len, source_of=lambda item: "replay").examples


def _plan(by_source, train: TrainSettings, dist: Dist) -> packing.Plan:
    return packing.build_plan(by_source["qa"], by_source["document"], by_source["replay"],
                              qa_to_document_ratio=train.qa_to_document_ratio, replay_fraction=train.replay_fraction,
                              batch_tokens=train.batch_tokens, epochs=train.epochs, max_steps=train.max_steps,
                              seed=train.seed, world_size=dist.world_size, open_book=by_source["open_book"])


# ----- the run -------------------------------------------------------------------

def _seed(seed: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Setup:
    """Everything decided before the model loads: settings, data, placement, where the run lives."""

    project: Project
    resume: bool
    dist: Dist
    events: Events
    cancel: CancelToken
    student: StudentSettings
    train: TrainSettings
    run_id: str
    run_dir: Path
    items_file: Path | None
    items: list[TrainingItem]
    student_folder: Path
    placement: Placement


@dataclass
class Session:
    """The live training objects; ``trained`` is ``model`` itself or its DDP wrapper."""

    model: Any
    trained: Any
    tokenizer: Any
    optimizer: Any
    scheduler: Any
    scaler: Any
    plan: packing.Plan
    start_step: int


def _run_config(setup: Setup, plan: packing.Plan) -> RunConfig:
    return RunConfig(
        run_id=setup.run_id, created_at=time.time(),
        student=setup.student.model_dump(mode="json"), train=setup.train.model_dump(mode="json"),
        project_train=setup.project.config.train.model_dump(mode="json"),
        base_model=setup.student.model, student_folder=str(setup.student_folder),
        items_file=str(setup.items_file) if setup.items_file else None,
        data=RunData(items=len(setup.items), items_fingerprint=packing.items_fingerprint(setup.items),
                     plan_fingerprint=plan.fingerprint(), total_steps=plan.total_steps,
                     epochs_planned=plan.epochs_planned, mix=plan.count_by_source()),
        device=setup.placement.device, dtype=setup.placement.dtype, world_size=setup.dist.world_size,
        versions=checkpoints.library_versions(),
    )


def _check_same_data(saved: RunConfig, items: list[TrainingItem], plan: packing.Plan) -> None:
    if saved.data.items_fingerprint != packing.items_fingerprint(items) or \
            saved.data.plan_fingerprint != plan.fingerprint():
        raise TrainError(f"The training items changed since run {saved.run_id} started, so it cannot resume "
                         "with the same data order.", "Start a new run with 'doctune train'.",
                         window_hint="Press Train on the Train page to start a new run.")


def _truncate_metrics(path: Path, up_to_step: int) -> None:
    """Drop metric lines written after the checkpoint being resumed (those steps are redone)."""
    write_records(path, [record for record in read_records(MetricRecord, path) if record.step <= up_to_step])


def run(params: TrainParams, *, events: Events, cancel: CancelToken) -> TrainResult:
    """Train a LoRA adapter on the project's items; resumable, cancellable, distributed-ready."""
    dist = Dist.from_env()
    events = events.child("train") if dist.main else Events()
    project = Project.open(params.project_dir)
    student, train, run_id, items_file = _settings(project, params)
    if dist.main and not params.resume:
        _mention_interrupted(project, events)
    placement = choose_placement(train.device, train.dtype, dist.local_rank)
    if train.qlora:
        check_qlora(placement)
    items = _load_items(project, items_file, events)
    dist.start(placement)
    try:
        run_id = dist.broadcast(run_id)
        run_dir = project.runs_dir / run_id
        if dist.main:
            checkpoints.ensure_writable(run_dir)
        student_folder = resolve_student(student.model, revision=student.revision,
                                         offline=project.config.privacy.offline,
                                         trust_remote_code=student.trust_remote_code, events=events)
        setup = Setup(project, bool(params.resume), dist, events, cancel, student, train, run_id, run_dir,
                      items_file, items, student_folder, placement)
        return _steps(setup, _prepare(setup))
    finally:
        dist.stop()


def _mention_interrupted(project: Project, events: Events) -> None:
    """A new run beside interrupted ones: say which could be resumed instead, and how."""
    from doctune.core.runs import INTERRUPTED, run_folders, run_state

    for run_dir in run_folders(project.runs_dir):
        if run_state(run_dir) != INTERRUPTED:
            continue
        checkpoint = checkpoints.latest_checkpoint(run_dir)
        where = f"at step {int(checkpoint.name.split('-')[-1])}" if checkpoint is not None else "before its first checkpoint"
        events.warning(f"Run {run_dir.name} was interrupted {where}; this starts a new run beside it. To continue "
                       f"it instead, stop this one and run: doctune train --resume {run_dir.name}",
                       window_message=f"Run {run_dir.name} was interrupted {where}; this starts a new run beside "
                                      "it. To continue it instead, press Cancel, then Resume on the Train page.",
                       run_id=run_dir.name, interrupted=True)


def _replay(setup: Setup, model, tokenizer, tokens_wanted: int) -> list[TrainingItem]:
    train, dist = setup.train, setup.dist
    if train.replay_fraction <= 0 or tokens_wanted <= 0:
        return []
    kwargs = dict(student_folder=setup.student_folder, cache_dir=setup.project.cache_dir,
                  prompts=train.replay_prompts, max_new_tokens=train.replay_max_new_tokens, events=setup.events,
                  cancel=setup.cancel, tokens_wanted=tokens_wanted)
    if dist.main:
        model.eval()
        replay = replay_items(model, tokenizer, **kwargs)
    dist.barrier()
    if not dist.main:
        replay = replay_items(model, tokenizer, **kwargs)
    if not replay:
        setup.events.warning("The base student gave no usable replay answers; training without replay")
    return replay


def _prepare(setup: Setup) -> Session:
    """Load the student, build the data plan, record the run, wrap in LoRA, restore a checkpoint."""
    import torch

    train, placement, dist, events = setup.train, setup.placement, setup.dist, setup.events
    if placement.kind == "cpu" and train.cpu_threads:
        torch.set_num_threads(train.cpu_threads)
    _seed(train.seed)
    model, tokenizer = _load_model(setup.student_folder, setup.student, train, placement)
    by_source, _ = _examples(setup.items, tokenizer, train, events)
    distills, opens_book = train.objective != "sft", train.open_book_fraction > 0
    hits = _chunk_hits(setup) if distills or opens_book else {}
    if distills:
        by_source["qa"] = _with_teacher_views(setup, by_source["qa"], tokenizer, hits)
    by_source["open_book"] = _open_book_examples(setup, by_source["qa"], tokenizer, hits) if opens_book else []
    by_source["replay"] = _replay_examples(setup, model, tokenizer, by_source)
    plan = _plan(by_source, train, dist)
    if plan.total_steps == 0:
        raise TrainError("The training mix is too small for the number of processes.", "Run with fewer processes.")
    if setup.resume:
        _check_same_data(checkpoints.read_run_config(setup.run_dir), setup.items, plan)
    elif dist.main:
        with checkpoints.disk_errors("run configuration", setup.run_dir):
            checkpoints.write_run_config(setup.run_dir, _run_config(setup, plan))
    _seed(train.seed)
    model = _lora(model, train)
    optimizer, scheduler = _optimizer(model, train, plan.total_steps)
    scaler = torch.amp.GradScaler(placement.kind) if placement.needs_grad_scaler else None
    start_step = _restore(setup, model, optimizer, scheduler, scaler)
    events.log(f"Training {setup.run_id}: {plan.total_steps} steps on {placement.device} ({placement.dtype}), "
               f"world size {dist.world_size}; mix tokens: "
               + ", ".join(f"{k} {v['tokens']}" for k, v in sorted(plan.count_by_source().items())))
    trained = model
    if dist.active:
        from torch.nn.parallel import DistributedDataParallel

        trained = DistributedDataParallel(model, device_ids=[placement.device] if placement.kind == "cuda" else None)
    return Session(model, trained, tokenizer, optimizer, scheduler, scaler, plan, start_step)


def _restore(setup: Setup, model, optimizer, scheduler, scaler) -> int:
    """The step to start from: 0, or the last checkpoint's step when resuming."""
    if not setup.resume:
        return 0
    start_step = 0
    checkpoint = checkpoints.latest_checkpoint(setup.run_dir)
    if checkpoint is not None:
        start_step = checkpoints.load_checkpoint(checkpoint, model, optimizer, scheduler, scaler)
        setup.events.log(f"Resuming run {setup.run_id} from step {start_step}")
    if setup.dist.main:
        _truncate_metrics(RunLayout(setup.run_dir).metrics, start_step)
    return start_step


def _forward_backward(session: Session, batch, placement: Placement, objective: str = "sft") -> float:
    import torch

    with torch.autocast(placement.kind, dtype=placement.torch_dtype, enabled=placement.autocast):
        if "teacher_input_ids" in batch and objective != "sft":
            loss = _distillation_loss(session, batch, objective)
        else:
            loss = _next_token_loss(session, batch)
    (session.scaler.scale(loss) if session.scaler else loss).backward()
    return float(loss.detach())


def _learned_logits(session: Session, batch):
    """The row's positions whose next token is learned (its label is not ignored), and the logits at those only.

    The output layer runs there only (``logits_to_keep``): most tokens of a chat item are prompt, and the output
    layer is vocabulary-wide (~150k for real students), so full logits cost a large share of a step's work and
    memory: ``python bench/loss.py`` (a row of four chat items, 1,893 tokens, on a two-layer body with Qwen2.5's
    151,936-token vocabulary, CPU, fp32, LoRA) took 3.18 s and 3.4 GB more memory with every position's logits,
    0.23 s and 0.2 GB with the learned ones. With the lab reader's 4,096 tokens a step is about the same."""
    learned = (batch["labels"][0, 1:] != packing.IGNORE).nonzero().squeeze(-1)
    logits = session.trained(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False,
                             logits_to_keep=learned).logits[0]  # a cache would disable the packed mask
    return learned, logits


def _next_token_loss(session: Session, batch):
    """Mean next-token cross-entropy over the row's learned tokens, as transformers computes it from ``labels``."""
    import torch.nn.functional as F

    learned, logits = _learned_logits(session, batch)
    return F.cross_entropy(logits.float(), batch["labels"][0, 1:][learned])


def _distillation_loss(session: Session, batch, objective: str):
    """Mean over the row's learned tokens: where an answer token has a teacher view, KL(teacher ‖ student) over the
    vocabulary (``mix``: plus the next-token loss); every other learned token, the next-token loss.

    The teacher is the same model with the adapter off, reading the teacher row (the chat with its passage)."""
    import torch
    import torch.nn.functional as F

    learned, logits = _learned_logits(session, batch)
    next_token = F.cross_entropy(logits.float(), batch["labels"][0, 1:][learned], reduction="none")
    with torch.no_grad(), session.model.disable_adapter():
        teacher = session.model(input_ids=batch["teacher_input_ids"], position_ids=batch["teacher_position_ids"],
                                use_cache=False, logits_to_keep=batch["teacher_index"]).logits[0]
    row_of = torch.full_like(batch["labels"][0, 1:], -1)  # a learned position's row in ``logits``
    row_of[learned] = torch.arange(len(learned), device=learned.device)
    teacher_log = F.log_softmax(teacher.float(), dim=-1)
    student_log = F.log_softmax(logits[row_of[batch["student_index"]]].float(), dim=-1)
    divergence = (teacher_log.exp() * (teacher_log - student_log)).sum(-1)
    distilled = torch.zeros(len(learned), dtype=torch.bool, device=learned.device)
    distilled[row_of[batch["student_index"]]] = True
    kept = next_token if objective == "mix" else next_token * ~distilled
    return (kept.sum() + divergence.sum()) / max(1, len(learned))


def _optimizer_step(session: Session, max_grad_norm: float) -> None:
    import torch

    optimizer, scaler = session.optimizer, session.scaler
    if scaler:
        scaler.unscale_(optimizer)
    if max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_([p for p in session.model.parameters() if p.requires_grad], max_grad_norm)
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    session.scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def _checkpoint(setup: Setup, session: Session, step: int) -> None:
    if setup.dist.main:
        with checkpoints.disk_errors("checkpoint", setup.run_dir, session.model):
            checkpoints.save_checkpoint(setup.run_dir, step, session.model, session.optimizer, session.scheduler,
                                 session.scaler)
        setup.events.log(f"Checkpoint saved at step {step}")
    setup.dist.barrier()


def _train_step(setup: Setup, session: Session, step: int) -> tuple[float, float, int]:
    """One optimizer step on this process's packed row; returns (mean loss, lr used, tokens of all processes)."""
    rows = session.plan.rows_for_step(step)
    batch = {k: v.to(setup.placement.device) for k, v in packing.collate(rows[setup.dist.rank]).items()}
    loss = setup.dist.mean(_forward_backward(session, batch, setup.placement, setup.train.objective))
    lr = session.scheduler.get_last_lr()[0]
    _optimizer_step(session, setup.train.max_grad_norm)
    return loss, lr, sum(e.n_tokens for row in rows for e in row)


def _steps(setup: Setup, session: Session) -> TrainResult:
    total, start_step, events = session.plan.total_steps, session.start_step, setup.events
    tracker = events.tracker(total, unit="steps")
    tracker.done = start_step
    started = time.monotonic()
    tokens_seen = 0
    loss = float("nan")
    session.trained.train()
    metrics = JsonlAppender(RunLayout(setup.run_dir).metrics) if setup.dist.main else None
    try:
        for step in range(start_step, total):
            if setup.dist.any_true(setup.cancel.cancelled):
                _checkpoint(setup, session, step)
                raise Cancelled()
            loss, lr, tokens = _train_step(setup, session, step)
            tokens_seen += tokens
            elapsed = time.monotonic() - started
            eta = (total - step - 1) * elapsed / (step + 1 - start_step)
            record = {"step": step + 1, "total_steps": total, "loss": round(loss, 5), "lr": lr,
                      "tokens_per_s": round(tokens_seen / elapsed, 1) if elapsed > 0 else 0.0,
                      "eta_s": round(eta, 1), "tokens": tokens_seen}
            if metrics:
                with checkpoints.disk_errors("training metrics", setup.run_dir, session.model):
                    append_records(metrics, [MetricRecord(time=time.time(), **record)])
            events.metric(**record)
            tracker.update(step + 1, message=f"loss {loss:.4f}")
            if (step + 1) % setup.train.checkpoint_every == 0 and step + 1 < total:
                _checkpoint(setup, session, step + 1)
    finally:
        if metrics:
            metrics.close()
    seconds = time.monotonic() - started
    _finish(setup, session, loss, tokens_seen, seconds)
    return TrainResult(run_id=setup.run_id, run_dir=setup.run_dir, adapter_dir=RunLayout(setup.run_dir).adapter,
                       steps=total, final_loss=loss, tokens=tokens_seen, seconds=seconds, reports=setup.dist.main)


def _finish(setup: Setup, session: Session, loss: float, tokens: int, seconds: float) -> None:
    """Write the adapter, then the summary that marks the run complete."""
    if setup.dist.main:
        with checkpoints.disk_errors("adapter", setup.run_dir, session.model):
            checkpoints.save_adapter(setup.run_dir, session.model, session.tokenizer)
            checkpoints.write_summary(setup.run_dir, RunSummary(
                status=COMPLETE, run_id=setup.run_id, base_model=setup.student.model,
                student_folder=str(setup.student_folder), steps=session.plan.total_steps,
                final_loss=loss, tokens=session.plan.total_tokens, tokens_this_session=tokens,
                seconds_this_session=round(seconds, 2), world_size=setup.dist.world_size,
                adapter=RunLayout(setup.run_dir).adapter.name, finished_at=time.time()))
    setup.dist.barrier()
