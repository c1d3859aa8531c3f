"""``synth.run``: plan tasks from the chunks, ask the teacher, filter, append to ``synth/`` (or ``eval/``).

Crash safety and resuming: every finished task leaves exactly one record,
appended (flushed, fsynced) by the single writer thread: an item in the
project's items (held-out questions), or a ``SynthOutcome`` in their outcomes
log (``core.records.ProjectLayout`` says where) that says ``failed`` or
``filtered`` and why. A re-run skips tasks with an item or a ``filtered``
outcome and retries the ``failed`` ones; a SIGKILL loses only the tasks in
flight, and the torn last line it may leave is cut off on the next run.

``failed``: the teacher gave no usable reply (an HTTP failure after retries,
or replies that are not the asked JSON). ``filtered``: a well-formed reply
that a content filter rejected (duplicate, not grounded, leakage …). Replies
recorded as ``filtered`` for their schema by older versions are retried too.

Counting: ``planned = already_done + generated + failed + filtered + deferred``
(deferred: not started because the token budget ran out).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from doctune.core.errors import UserError, disk_errors, write_failure_reason
from doctune.core.events import Cancelled, CancelToken, Events, ProgressTracker
from doctune.core.fsio import JsonlAppender, describe_bytes, read_jsonl
from doctune.core.items import (
    EvalQuestion,
    TrainingItem,
    failures_path,
    items_path,
    questions_path,
)
from doctune.core.records import ProjectLayout, SynthOutcome, TeacherSpeed
from doctune.core.synth import filters, schemas
from doctune.core.synth.prompts import load_prompt
from doctune.core.synth.recipes import REGISTRY, TRAIN_RECIPES, EntityCache, plan_eval_tasks, plan_tasks
from doctune.core.synth.tasks import (
    EXPECTED_OUTPUT_SHARE,
    UNUSABLE,
    Draft,
    GenerationContext,
    InvalidOutput,
    Task,
    Usage,
    letter_index,
    source_tokens,
)
from doctune.core.teachers import Teacher, TeacherCallError, estimate_tokens

SCHEMA = "schema"  # the reason of a reply that is not the record's shape: a failed call, never a filter


class SynthInputError(UserError):
    """Synthesis cannot start: no chunks, an unknown recipe, settings that do not fit."""


class SynthWriteError(UserError):
    """Generated items cannot be written (a full disk, a folder that cannot be written)."""


class SynthBusy(UserError):
    """Another synthesis is writing to the same files of this project."""


LOCK_FILE = ".synth.lock"


@contextmanager
def one_synthesis(folder: Path) -> Iterator[None]:
    """Hold the lock of the folder synthesis writes to (``synth/`` or ``eval/``): one synthesis at a time, so two
    never generate (and pay for) the same items twice."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(folder / LOCK_FILE))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=0)
    except Timeout:  # before OSError: filelock's Timeout is a TimeoutError
        raise SynthBusy(f"Another 'doctune synth' is already generating into {folder}",
                        "wait until it has finished (or cancel it), then run this again; "
                        "it skips what is already done",
                        "Wait until the other generation has finished (or cancel it), then press Generate again "
                        "on the Synthesize page; it skips what is already done.") from None
    except OSError as exc:
        raise SynthWriteError(f"Synthesis cannot write to {folder}: {write_failure_reason(exc)}.",
                              "Make the project folder writable (or free disk space), then run this again.") from None
    try:
        yield
    finally:
        lock.release()


class SynthParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project_dir: Path = Field(description="The project folder.")
    recipes: dict[str, float] | list[str] | None = Field(
        None, description="Recipes to run, with their weights (a list: the project's weights); default: the "
                          "project's [synth] recipes.")
    amplification: float | None = Field(
        None, ge=0, le=10000, description="Synthetic tokens per source token for this run (default: the project's "
                                          "[synth] amplification; 0: per_chunk items per chunk and recipe).")
    eval: bool = Field(False, description="Write held-out evaluation questions to eval/ instead of training items.")
    dry_run: bool = Field(False, description="Only plan and estimate: calls, tokens, time and cost.")

    @field_validator("recipes")
    @classmethod
    def _known_recipes(cls, names: dict[str, float] | list[str] | None) -> dict[str, float] | list[str] | None:
        if isinstance(names, dict) and any(weight <= 0 for weight in names.values()):
            raise ValueError("a recipe's weight must be above 0")
        if names is not None:
            unknown = [name for name in names if name not in TRAIN_RECIPES]
            if unknown:
                raise ValueError(f"unknown recipe(s) {', '.join(unknown)}; choose from {', '.join(TRAIN_RECIPES)}")
            if not names:
                raise ValueError("name at least one recipe")
        return names


@dataclass
class SynthResult:
    mode: str
    planned: int = 0
    already_done: int = 0
    generated: int = 0
    failed: int = 0
    filtered: int = 0
    deferred: int = 0
    filtered_by_reason: dict[str, int] = field(default_factory=dict)
    failed_by_reason: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    items_per_s: float = 0.0
    teacher: str = ""
    estimate: dict[str, Any] | None = None
    target: str = ""  # where the items or questions are written, relative to the project folder
    coverage: dict[str, Any] | None = None  # training material per document: the spread (synth.coverage)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def message(self, window: bool = False) -> str:
        """What the run did in one sentence; for a dry run, the estimate (``window``: in the window's words)."""
        if self.estimate is not None:
            return describe_estimate(self.estimate, window)
        done = f"{self.generated} written to {self.target}, {self.filtered} filtered, {self.failed} failed."
        return f"{done} {self.coverage['text']}" if self.coverage else done


@dataclass
class Outcome:
    task: Task
    usage: Usage
    draft: Draft | None = None
    failure: str | None = None  # the teacher failed for good
    invalid: str | None = None  # the reply could not make an item


# ----- the project's files -----------------------------------------------------------------------

class Outputs:
    """Where one mode writes, what is already there, and the indexes the filters need."""

    def __init__(self, project, mode: str) -> None:
        self.mode = mode
        if mode == "eval":
            self.items_file = questions_path(project)
            self.outcomes_file = ProjectLayout(Path(project.root)).question_outcomes
        else:
            self.items_file = items_path(project)
            self.outcomes_file = failures_path(project)
        self.existing = list(read_jsonl(self.items_file))
        self.done_ids = {str(r.get("id")) for r in self.existing}
        self.done_ids |= {str(r.get("id")) for r in read_jsonl(self.outcomes_file)
                          if r.get("outcome") == "filtered" and r.get("reason") != SCHEMA}
        self._items: JsonlAppender | None = None
        self._outcomes: JsonlAppender | None = None

    def append_item(self, record: dict[str, Any]) -> None:
        if self._items is None:
            self._items = JsonlAppender(self.items_file)
        self._items.append(record)

    def append_outcome(self, record: dict[str, Any]) -> None:
        if self._outcomes is None:
            self._outcomes = JsonlAppender(self.outcomes_file)
        self._outcomes.append(record)

    def close(self) -> None:
        for appender in (self._items, self._outcomes):
            if appender is not None:
                appender.close()


def _question_of(record: dict[str, Any]) -> str:
    if "question" in record:
        return str(record["question"])
    for message in record.get("messages") or []:
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


def _dedupe_key(record: dict[str, Any]) -> tuple[str, str]:
    """(near-duplicate group, text) of an item or question record."""
    kind = record.get("kind", "")
    text = record.get("text", "") if kind == "document" else _question_of(record)
    return f"{record.get('chunk_id', '')}:{kind}", text


def _leakage_index(project, mode: str, threshold: float) -> filters.LeakageIndex:
    """The other side's questions: training QA questions for eval, eval questions for training."""
    if mode == "eval":
        questions = [_question_of(r) for r in read_jsonl(items_path(project)) if r.get("kind") == "qa"]
    else:
        questions = [str(r.get("question", "")) for r in read_jsonl(questions_path(project))]
    return filters.LeakageIndex([q for q in questions if q], threshold)


# ----- turning drafts into records ---------------------------------------------------------------

class Finisher:
    """Builds the record of a draft and applies the filters; returns (record, None) or (None, reason)."""

    def __init__(self, settings, teacher_name: str, duplicates: filters.DuplicateIndex,
                 leakage: filters.LeakageIndex) -> None:
        self.settings = settings
        self.teacher_name = teacher_name
        self.duplicates = duplicates
        self.leakage = leakage

    def finish(self, draft: Draft) -> tuple[dict[str, Any] | None, str | None]:
        try:
            record, answer = self._record(draft)
        except ValidationError as exc:
            return None, f"{SCHEMA}: {str(exc).splitlines()[0][:200]}"
        except InvalidOutput as exc:
            return None, str(exc)
        reason = self._problem(draft, record, answer)
        if reason:
            return None, reason
        group, text = _dedupe_key(record)
        reason = self.duplicates.check_and_add(group, text)
        return (None, reason) if reason else (record, None)

    def _meta(self, draft: Draft) -> dict[str, Any]:
        usage = draft.usage
        return {"task_index": draft.task.index, "seed": draft.task.seed, "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens, "seconds": round(usage.seconds, 3),
                "calls": usage.calls, "attempts": usage.attempts, **draft.meta}

    def _record(self, draft: Draft) -> tuple[dict[str, Any], str]:
        task, f = draft.task, draft.fields
        common = {"id": task.id, "chunk_id": task.source.chunk_ids[0], "doc_id": task.source.doc_id}
        if draft.kind in ("mc", "open"):
            return self._question_record(draft, common)
        if draft.kind == "qa":
            answer = f"{f['answer'].strip()} {f['explanation'].strip()}".strip()
            item = TrainingItem(**common, kind="qa", recipe=task.recipe, teacher=self.teacher_name,
                                prompt_hash=draft.prompt_hash, meta=self._meta(draft),
                                messages=[{"role": "user", "content": f["question"]},
                                          {"role": "assistant", "content": answer}])
            return item.to_record(), f["answer"]
        item = TrainingItem(**common, kind="document", recipe=task.recipe, teacher=self.teacher_name,
                            prompt_hash=draft.prompt_hash, meta=self._meta(draft), text=f["text"],
                            title=task.source.title)
        return item.to_record(), f["text"]

    def _question_record(self, draft: Draft, common: dict[str, Any]) -> tuple[dict[str, Any], str]:
        task, f = draft.task, draft.fields
        meta = {**self._meta(draft), "recipe": task.recipe, "teacher": self.teacher_name,
                "prompt_hash": draft.prompt_hash}
        if draft.kind == "mc":
            options = [option.strip() for option in f["options"]]
            if len({filters.normalized(option) for option in options}) < 4:
                raise InvalidOutput("options: the four options are not all different")
            reference = options[letter_index(f["answer"])]
            question = EvalQuestion(**common, kind="mc", question=f["question"], options=options, answer=f["answer"],
                                    reference=reference, source_text=task.source.text, meta=meta)
        else:
            reference = f["answer"].strip()
            question = EvalQuestion(**common, kind="open", question=f["question"], answer=reference,
                                    reference=reference, source_text=task.source.text, meta=meta)
        return question.to_record(), reference

    def _problem(self, draft: Draft, record: dict[str, Any], answer: str) -> str | None:
        s = self.settings
        if draft.kind == "document":
            reason = filters.length_problem(answer, s.min_document_chars, s.max_document_chars, "text")
        else:
            reason = filters.length_problem(_question_of(record), 10, s.max_question_chars, "question")
        if reason:
            return reason
        if draft.kind != "document" and filters.refers_to_unseen_text(_question_of(record)):
            return "not self-contained: the question points at the passage instead of naming its subject"
        reason = self._grounding_problem(draft, answer)
        if reason:
            return reason
        if draft.kind in ("qa", "mc", "open") and self.leakage.leaks(_question_of(record)):
            return "leakage: too close to an evaluation question" if draft.kind == "qa" else \
                "leakage: too close to a training question"
        return None

    def _grounding_problem(self, draft: Draft, answer: str) -> str | None:
        """Documents (rewrites) are checked by key terms at half the bar; answers by terms or the judge's verdict."""
        s = self.settings
        if s.grounding == "off":
            return None
        if draft.kind == "document" or s.grounding == "terms":
            minimum = s.grounding_min / 2 if draft.kind == "document" else s.grounding_min
            if filters.grounding_share(answer, draft.task.source.text) < minimum:
                return "not grounded: key terms missing from the source"
            return None
        if draft.meta.get("judge_supported") is False:
            return "not grounded: the judge found it unsupported"
        return None


# ----- running tasks ------------------------------------------------------------------------------

def _judge(draft: Draft, ctx: GenerationContext, usage: Usage) -> None:
    """Ask the teacher whether a QA answer (or reference answer) is supported by its passage."""
    f = draft.fields
    answer = f.get("answer", "")
    if draft.kind == "mc":
        answer = f["options"][letter_index(f["answer"])]
    prompt = load_prompt("grounding_judge")
    data = ctx.ask(prompt.messages(passage=draft.task.source.text, question=f.get("question", ""), answer=answer),
                   schemas.judge_schema(), draft.task, usage, salt="judge")
    draft.meta["judge_supported"] = bool(data["supported"])
    draft.meta["judge_reason"] = data.get("reason", "")


def execute(task: Task, ctx: GenerationContext) -> Outcome:
    usage = Usage()
    try:
        draft = REGISTRY[task.recipe].run(task, ctx, usage)
        if ctx.settings.grounding == "judge" and draft.kind != "document":
            _judge(draft, ctx, usage)
    except TeacherCallError as exc:
        return Outcome(task, usage, failure=str(exc))
    except InvalidOutput as exc:
        return Outcome(task, usage, invalid=str(exc))
    return Outcome(task, usage, draft=draft)


def _category(reason: str) -> str:
    return reason.split(":", 1)[0].strip()


class Run:
    """One synthesis pass: submits tasks to a thread pool, writes outcomes from this thread."""

    def __init__(self, project, mode: str, teacher: Teacher, outputs: Outputs, events: Events,
                 cancel: CancelToken) -> None:
        settings = project.config.synth
        self.settings = settings
        self.teacher = teacher
        self.outputs = outputs
        self.events = events
        self.cancel = cancel
        self.result = SynthResult(mode=mode, teacher=teacher.name)
        duplicates = filters.DuplicateIndex(settings.near_duplicate)
        for record in outputs.existing:
            duplicates.check_and_add(*_dedupe_key(record))
        self.finisher = Finisher(settings, teacher.name, duplicates,
                                 _leakage_index(project, mode, settings.leakage_threshold))
        self.entities = EntityCache(ProjectLayout(Path(project.root)).entities)
        self.ctx = GenerationContext(teacher, settings, self.entities)
        self.teacher_seconds = 0.0
        self.calls = 0  # teacher calls made (an item may take several: setup, generation, judge)
        self._tracker: ProgressTracker | None = None  # one bar for the run, top-up rounds included

    def _budget_spent(self) -> bool:
        budget = self.settings.token_budget
        return bool(budget) and self.result.completion_tokens >= budget

    @property
    def stopped(self) -> bool:
        """Cancelled, or the token budget is spent: no more tasks start."""
        return self.cancel.cancelled or self._budget_spent()

    def execute_all(self, pending: list[Task]) -> None:
        """Generate ``pending``; a run may call this again with more tasks (``_top_up``), its counts add up."""
        if self._tracker is None:
            self._tracker = self.events.tracker(len(pending), unit="items")
        else:  # a top-up round: the same bar, its total grown
            self._tracker.total = (self._tracker.total or 0) + len(pending)
        tracker = self._tracker
        done_before = self.result.generated + self.result.failed + self.result.filtered
        workers = max(1, self.teacher.concurrency)
        queue: Iterator[Task] = iter(pending)
        in_flight: dict[Future, Task] = {}
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="synth") as pool:
            def top_up() -> None:
                while len(in_flight) < workers * 2 and not self.cancel.cancelled and not self._budget_spent():
                    task = next(queue, None)
                    if task is None:
                        return
                    in_flight[pool.submit(execute, task, self.ctx)] = task

            top_up()
            while in_flight:
                finished, _ = wait(list(in_flight), timeout=0.5, return_when=FIRST_COMPLETED)
                for future in finished:
                    del in_flight[future]
                    try:
                        outcome = future.result()
                    except Cancelled:
                        continue  # abandoned by a cancel: not done, generated on the next run
                    with self._write_errors(int(tracker.total or 0) - tracker.done):
                        self._record(outcome)
                    tracker.advance(message=self._progress_message(), tokens_in=self.result.prompt_tokens,
                                    tokens_out=self.result.completion_tokens, failed=self.result.failed,
                                    filtered=self.result.filtered)
                top_up()
        self.result.seconds += time.monotonic() - started
        done = self.result.generated + self.result.failed + self.result.filtered - done_before
        self.result.deferred += len(pending) - done
        self.result.items_per_s = round(self.result.generated / self.result.seconds, 3) if self.result.seconds else 0.0
        if self.cancel.cancelled:
            raise Cancelled()

    def warn_outcomes(self) -> None:
        """What the user should know once the run's tasks are through: leaked items dropped, a budget reached."""
        leaked = self.result.filtered_by_reason.get("leakage", 0)
        if leaked:
            other = "training questions" if self.result.mode == "eval" else "held-out evaluation questions"
            self.events.warning(f"Leakage check: {leaked} item(s) dropped as too close to {other} "
                                f"(synth.leakage_threshold = {self.settings.leakage_threshold}).")
        if self.result.deferred:
            self.events.warning(f"Token budget of {self.settings.token_budget} reached: {self.result.deferred} "
                                "item(s) not started. Raise synth.token_budget and re-run to continue.",
                                window_message=f"Token budget of {self.settings.token_budget} reached: "
                                               f"{self.result.deferred} item(s) not started. Raise synth.token_budget "
                                               "in the project's doctune.toml (the window has no setting for it), "
                                               "then press Generate again to continue.")

    def _write_errors(self, remaining: int):
        """A failed write of the outputs (a full disk) as a ``SynthWriteError`` saying how much to free."""
        folder = self.outputs.items_file.parent

        def need_bytes() -> int:
            written = [path for path in (self.outputs.items_file, self.outputs.outcomes_file) if path.exists()]
            lines = sum(path.read_bytes().count(b"\n") for path in written)
            average = sum(path.stat().st_size for path in written) / lines if lines else 4096
            return int(remaining * average)

        return disk_errors("generated items", folder, SynthWriteError,
                           "Everything written so far is kept; re-running skips it and generates the rest.",
                           need_bytes=need_bytes,
                           window_hint="Everything written so far is kept; press Generate again on the Synthesize "
                                       "page to generate the rest.")

    def _progress_message(self) -> str:
        r = self.result
        return f"{r.generated} written, {r.filtered} filtered, {r.failed} failed"

    def _record(self, outcome: Outcome) -> None:
        r, task = self.result, outcome.task
        r.prompt_tokens += outcome.usage.prompt_tokens
        r.completion_tokens += outcome.usage.completion_tokens
        self.teacher_seconds += outcome.usage.seconds
        self.calls += outcome.usage.calls
        if outcome.failure:
            self._outcome(task, "failed", outcome.failure)
            return
        record, reason = (None, outcome.invalid) if outcome.invalid else self.finisher.finish(outcome.draft)
        if record is None and _category(reason or "") == SCHEMA:  # the reply is not an item's shape: retry later
            self._outcome(task, "failed", f"{UNUSABLE}: {reason}")
            return
        if record is None:
            self._outcome(task, "filtered", reason or "unknown")
            return
        self.outputs.append_item(record)
        r.generated += 1

    def _outcome(self, task: Task, outcome: str, reason: str) -> None:
        category = (UNUSABLE if reason.startswith(UNUSABLE) else "teacher error") if outcome == "failed" \
            else _category(reason)
        counts = self.result.failed_by_reason if outcome == "failed" else self.result.filtered_by_reason
        counts[category] = counts.get(category, 0) + 1
        if outcome == "failed":
            self.result.failed += 1
        else:
            self.result.filtered += 1
        self.outputs.append_outcome(SynthOutcome(
            id=task.id, outcome=outcome, reason=category, detail=reason[:500], recipe=task.recipe,
            chunk_id=task.source.chunk_ids[0], doc_id=task.source.doc_id, teacher=self.teacher.name, time=time.time(),
        ).to_data())

    def close(self) -> None:
        self.entities.close()
        self.outputs.close()


# ----- estimates and measured speed ---------------------------------------------------------------

def speed_path(project) -> Path:
    return ProjectLayout(Path(project.root)).teacher_speed


def save_speed(project, teacher_name: str, completion_tokens: int, seconds: float, calls: int, *,
               wall_seconds: float | None = None) -> None:
    """Record the teacher's speed: ``seconds`` is the calls' own time added up; ``wall_seconds``, given by a
    generation run, the clock time the run took (its calls overlap), which is what its ETA measured."""
    if completion_tokens <= 0 or seconds <= 0 or calls <= 0:
        return
    wall = round(wall_seconds / calls, 4) if wall_seconds else None
    TeacherSpeed(teacher=teacher_name, tokens_per_s=completion_tokens / seconds, seconds_per_call=seconds / calls,
                 wall_seconds_per_call=wall, calls=calls, source="generate" if wall else "test",
                 measured_at=time.time()).save(speed_path(project))


def load_speed(project) -> TeacherSpeed | None:
    return TeacherSpeed.load_or_none(speed_path(project))


def estimate(project, pending: list[Task], *, planned: list[Task] | None = None,
             chunks: list[dict[str, Any]] | None = None, amplification: float = 0.0) -> dict[str, Any]:
    """Planned calls, tokens, time (from the teacher's last measured speed), cost and disk of ``pending``; with
    all the ``planned`` tasks and the ``chunks``, also the amplification they amount to (synthetic tokens per
    source token) beside the target."""
    settings, teacher = project.config.synth, project.config.teacher
    calls = prompt_tokens = output_max = 0
    sources_set_up: set[tuple[str, str]] = set()
    for task in pending:
        recipe = REGISTRY[task.recipe]
        call_schemas = recipe.call_schemas(settings)
        calls += len(call_schemas)
        prompt_tokens += len(call_schemas) * (estimate_tokens(task.source.text) + 250)
        output_max += sum(schemas.output_tokens(schema) for schema in call_schemas)
        setup_schemas = recipe.setup_schemas(settings)
        if setup_schemas and (task.recipe, task.source.id) not in sources_set_up:
            sources_set_up.add((task.recipe, task.source.id))
            calls += len(setup_schemas)
            prompt_tokens += len(setup_schemas) * (estimate_tokens(task.source.text) + 200)
            output_max += sum(schemas.output_tokens(schema) for schema in setup_schemas)
    measured = measured_item_tokens(project) if amplification else {}
    output_expected = int(output_max * EXPECTED_OUTPUT_SHARE) + int(sum(
        measured[task.recipe] - _expected_tokens(task, settings) for task in pending if task.recipe in measured))
    speed = load_speed(project)
    concurrency = teacher.concurrency * max(1, len(teacher.endpoint_urls())) if teacher.kind == "openai" else 1
    seconds, speed_source = None, None
    if speed and speed.wall_seconds_per_call:  # the last generation's clock time per call: its live ETA's rate
        seconds, speed_source = round(speed.wall_seconds_per_call * calls, 1), "generate"
    elif speed and speed.seconds_per_call and speed.tokens_per_s:  # one test request, alone
        per_call = max(speed.seconds_per_call, output_expected / max(calls, 1) / speed.tokens_per_s)
        seconds, speed_source = round(per_call * calls / concurrency, 1), "test"
    cost = (prompt_tokens * teacher.price_in_per_mtok + output_expected * teacher.price_out_per_mtok) / 1e6
    return {"items": len(pending), "calls": calls, "prompt_tokens": prompt_tokens,
            "completion_tokens": output_expected, "completion_tokens_max": output_max,
            "seconds": seconds, "speed_known": seconds is not None, "speed_source": speed_source,
            "cost": round(cost, 4),
            "priced": bool(teacher.price_in_per_mtok or teacher.price_out_per_mtok),
            "disk_bytes": int(sum(_expected_tokens(task, settings, measured) * 4 + RECORD_OVERHEAD_BYTES
                                  for task in pending)),
            **_amplification(planned or [], chunks or [], settings, amplification, measured)}


RECORD_OVERHEAD_BYTES = 700  # an item's JSON line beyond its text: ids, recipe, teacher, usage, hashes


def _expected_tokens(task: Task, settings, measured: dict[str, float] | None = None) -> float:
    """Synthetic tokens the task's item is expected to hold: as measured for its recipe, else from its schema."""
    return (measured or {}).get(task.recipe) or REGISTRY[task.recipe].expected_tokens(settings)


def _amplification(planned: list[Task], chunks: list[dict[str, Any]], settings, target: float,
                   measured: dict[str, float] | None = None) -> dict[str, Any]:
    """Synthetic tokens the planned items are expected to hold (at the measured sizes where known), per source
    token of the chunks, and the target."""
    source = source_tokens(chunks)
    synthetic = sum(_expected_tokens(task, settings, measured) for task in planned)
    return {"source_tokens": source, "synthetic_tokens": int(synthetic),
            "amplification": round(synthetic / source, 2) if source else None,
            "target_amplification": target or None}


SPEED_SOURCES = {
    "generate": ("at the speed measured while generating last time (the same rate as the time left shown while "
                 "generating)"),
    "test": ("from the teacher test's one request (generating sends several at once, so it is usually faster; "
             "the time left shown while generating is measured)"),
}
NO_SPEED = {
    False: "time unknown: nothing measured yet (run 'doctune teacher test', or generate: its progress shows the "
           "time left once the first items are written)",
    True: "time unknown: nothing measured yet (press Test on the Teacher page, or Generate: the time left shows "
          "once the first items are written)",
}


def describe_estimate(e: dict[str, Any], window: bool = False) -> str:
    """The estimate in one sentence, saying where its time comes from (``window``: in the window's words)."""
    source = SPEED_SOURCES.get(e.get("speed_source") or "", "at the teacher's measured speed")
    time_text = (f"{describe_minutes(e['seconds'])} {source}" if e["seconds"] is not None
                 else NO_SPEED[window])
    cost_text = f", about {e['cost']:.2f} at the configured prices" if e["priced"] else ""
    amount = ""
    if e.get("amplification") is not None:
        target = f" (target {e['target_amplification']:g}×)" if e.get("target_amplification") else ""
        amount = (f" All planned items hold ~{e['synthetic_tokens']} synthetic tokens: {e['amplification']:g}× the "
                  f"{e['source_tokens']} source tokens{target}.")
    disk = f"; about {describe_bytes(e['disk_bytes'])} on disk" if e.get("disk_bytes") is not None else ""
    return (f"{e['items']} item(s) to generate: {e['calls']} teacher calls, ~{e['prompt_tokens']} tokens in, "
            f"~{e['completion_tokens']} out; {time_text}{cost_text}{disk}.{amount} Nothing was sent.")


def describe_minutes(seconds: float) -> str:
    """``"about 17 min"``, ``"about 2 h 05 min"``, ``"under a minute"``: as precise as an estimate is."""
    minutes = round(seconds / 60)
    if minutes < 1:
        return "under a minute"
    return f"about {minutes} min" if minutes < 60 else f"about {minutes // 60} h {minutes % 60:02d} min"


# ----- the step ----------------------------------------------------------------------------------

def _recipes(project, params: SynthParams) -> dict[str, float]:
    configured = project.config.synth.recipes
    unknown = [name for name in configured if name not in TRAIN_RECIPES]
    if unknown:
        raise SynthInputError(f"doctune.toml names unknown recipe(s) in synth.recipes: {', '.join(unknown)}.",
                              f"Use some of: {', '.join(TRAIN_RECIPES)}.",
                              "Tick the recipes you want on the Synthesize page, then press Generate.")
    if params.recipes is None:
        return dict(configured)
    if isinstance(params.recipes, dict):
        return dict(params.recipes)
    return {name: configured.get(name, 1.0) or 1.0 for name in params.recipes}


def _chunks(project) -> list[dict[str, Any]]:
    from doctune.core.store import list_chunks

    chunks = list_chunks(project)
    if not chunks:
        raise SynthInputError(f"The project {project.root} has no document chunks yet.",
                              f"Add documents first: doctune add FILES -p {project.root}",
                              "Add documents on the Documents page first (Add files… or Add folder…).")
    return chunks


def _settings(project, params: SynthParams):
    """The project's [synth] settings with this run's amplification, if it names one."""
    if params.amplification is None:
        return project.config.synth
    return project.config.synth.model_copy(update={"amplification": params.amplification})


def _plan(project, params: SynthParams, chunks: list[dict[str, Any]]) -> list[Task]:
    if params.eval:
        return plan_eval_tasks(chunks, project.config.synth)
    settings = _settings(project, params)
    measured = measured_item_tokens(project) if settings.amplification else None
    return plan_tasks(chunks, _recipes(project, params), settings, measured)


MEASURE_MIN_ITEMS = 3
"""Kept items a recipe needs before its measured size replaces the schemas' estimate."""
TOP_UP_ROUNDS = 3
"""Rounds of a run that plan again from the sizes just measured (each only adds tasks; usually one suffices)."""


def measured_item_tokens(project) -> dict[str, float]:
    """Synthetic tokens per kept item of each recipe, as this project's teacher really wrote them: what lets an
    amplification target be reached when replies are shorter than the schemas' sizes expect."""
    from doctune.core.items import load_training_items
    from doctune.core.synth.coverage import item_tokens

    sizes: dict[str, list[int]] = {}
    for item in load_training_items(project):
        sizes.setdefault(item.recipe, []).append(item_tokens(item))
    return {recipe: sum(tokens) / len(tokens) for recipe, tokens in sizes.items() if len(tokens) >= MEASURE_MIN_ITEMS}


def plan(project, params: SynthParams) -> list[Task]:
    return _plan(project, params, _chunks(project))


def run(params: SynthParams, *, events: Events, cancel: CancelToken,
        teacher: Teacher | None = None, open_teacher: Callable[..., Teacher] | None = None) -> SynthResult:
    """Generate training items (or, with ``params.eval``, held-out questions) for the project."""
    from doctune.core.project import Project

    project = Project.open(params.project_dir)
    mode = "eval" if params.eval else "train"
    chunks = _chunks(project)
    tasks = _plan(project, params, chunks)
    if params.dry_run:
        pending = [task for task in tasks if task.id not in Outputs(project, mode).done_ids]
        result = SynthResult(mode=mode, planned=len(tasks), already_done=len(tasks) - len(pending),
                             estimate=estimate(project, pending, planned=tasks, chunks=chunks,
                                               amplification=_settings(project, params).amplification))
        return result
    folder = Path(project.eval_dir if params.eval else project.synth_dir)
    with one_synthesis(folder):
        return _generate(project, mode, tasks, chunks, params, events, cancel, teacher, open_teacher)


def _generate(project, mode: str, tasks: list[Task], chunks: list[dict[str, Any]], params: SynthParams,
              events: Events, cancel: CancelToken, teacher: Teacher | None,
              open_teacher: Callable[..., Teacher] | None) -> SynthResult:
    outputs = Outputs(project, mode)  # read under the lock: what is done cannot change while this runs
    pending = [task for task in tasks if task.id not in outputs.done_ids]
    already = len(tasks) - len(pending)
    owned = teacher is None
    if owned:
        if open_teacher is None:
            from doctune.core.teachers import open_teacher
        teacher = open_teacher(project, cancel=cancel, events=events)
    events.log(f"{len(tasks)} item(s) planned, {already} already done, {len(pending)} to generate with {teacher.name}.")
    job = Run(project, mode, teacher, outputs, events, cancel)
    try:
        job.execute_all(pending)
        if mode == "train":
            tasks = tasks + _top_up(project, params, chunks, job, {task.id for task in tasks}, events)
        job.warn_outcomes()
    finally:
        job.close()
        r = job.result
        try:
            save_speed(project, teacher.name, r.completion_tokens, job.teacher_seconds,
                       job.calls or r.generated + r.failed + r.filtered, wall_seconds=r.seconds)
        except OSError:
            pass  # a measured speed is a convenience for estimates; a full disk must not hide the real error
        if owned:
            teacher.close()
    result = job.result
    result.planned, result.already_done = len(tasks), already
    events.metric(items_per_s=result.items_per_s, generated=result.generated, failed=result.failed,
                  filtered=result.filtered, prompt_tokens=result.prompt_tokens,
                  completion_tokens=result.completion_tokens)
    layout = ProjectLayout(Path(project.root))
    result.target = (layout.questions if params.eval else layout.items).relative_to(layout.root).as_posix()
    if not params.eval:
        result.coverage = _coverage(project, chunks)
    return result


def _top_up(project, params: SynthParams, chunks: list[dict[str, Any]], job: Run, planned: set[str],
            events: Events) -> list[Task]:
    """Reach the amplification target when the teacher writes shorter items than the schemas' sizes expect: plan
    again from the sizes measured so far and generate the tasks that adds, for a few rounds. Returns those tasks."""
    added: list[Task] = []
    for _ in range(TOP_UP_ROUNDS):
        if job.stopped:
            break
        extra = [task for task in _plan(project, params, chunks)
                 if task.id not in planned and task.id not in job.outputs.done_ids]
        if not extra:
            break
        events.log(f"The teacher's items are shorter than planned: {len(extra)} more item(s) towards "
                   f"{_settings(project, params).amplification:g}× the source text.")
        planned |= {task.id for task in extra}
        added += extra
        job.execute_all(extra)
    return added


def _coverage(project, chunks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The spread of the training material over the documents (see ``synth.coverage``)."""
    from doctune.core.items import load_training_items
    from doctune.core.synth.coverage import coverage_spread, document_coverage

    spread = coverage_spread(document_coverage(load_training_items(project), chunks))
    return spread.as_dict() | {"text": spread.describe()} if spread else None
