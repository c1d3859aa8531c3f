"""``doctune eval``: every held-out question through every system, scored.

Order of work (each part resumable):

1. **Answer.** For each system in turn (one model in memory at a time), each
   question it has not answered yet: generate an answer through the system
   (multiple choice: the options are listed and a letter is asked for), score
   it, and — for multiple choice — compute the likelihood of each option's
   text as the answer. One flushed line per question × system goes to the
   answers log (``core.records.EvalAnswer``).
2. **Judge.** Each open answer without a verdict goes to the teacher (the
   verdicts log, ``EvalJudgment``); failures after retries are recorded as unjudged.
3. **Summarize.** The results (answers joined with verdicts, in question ×
   system order) and the ``EvalSummary`` are rebuilt from the two logs.

A system whose model is missing is skipped with its reason; the others run.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from doctune.core.errors import UserError
from doctune.core.evaluate.judge import judge_answer
from doctune.core.evaluate.scoring import likelihood_choice, option_letters, parse_choice, token_f1
from doctune.core.evaluate.store import EvalStore, create_eval, find_eval, now_iso, open_eval
from doctune.core.evaluate.summary import summarize
from doctune.core.events import Cancelled, CancelToken, Events
from doctune.core.isolation import ChildCrashed
from doctune.core.records import EvalAnswer, EvalJudgment, EvalLayout

PROMPT_VERSION = 2  # part of the fingerprint: changing prompts starts a new evaluation
NAMED_SYSTEMS = ("base", "base+rag", "tuned", "tuned+rag")
FINGERPRINT_RAG_SETTINGS = ("k", "n_ctx", "max_answer_tokens", "temperature", "gguf_format", "embedder", "reranker")
MC_INSTRUCTION = "Answer with the letter of the correct option (A, B, C or D)."


class NoQuestionsError(UserError):
    """There is nothing to evaluate."""


class EvalNotFoundError(UserError):
    """The evaluation asked for does not exist."""


class EvalParams(BaseModel):
    """What to evaluate. Validated before any model loads."""

    model_config = ConfigDict(extra="forbid")

    project_dir: Path = Field(description="Project folder.")
    systems: list[str] | None = Field(None, description="Systems to score (default: the project's [eval] systems).")
    eval_id: str | None = Field(None, description="Continue this evaluation instead of the matching one.")
    new: bool = Field(False, description="Start a fresh evaluation even if a matching one exists.")
    judge: bool = Field(True, description="Ask the teacher to judge open answers.")
    limit: int | None = Field(None, ge=1, description="Only the first N questions (quick checks).")

    @field_validator("systems")
    @classmethod
    def _known_systems(cls, systems: list[str] | None) -> list[str] | None:
        if systems is None:
            return None
        if not systems:
            raise ValueError("name at least one system")
        for system in systems:
            model = system.removesuffix("+rag")
            if system not in NAMED_SYSTEMS and not model.endswith(".gguf"):
                raise ValueError(f"unknown system {system!r}: use {', '.join(NAMED_SYSTEMS)} or a path to a .gguf file "
                                 "(add +rag for retrieval)")
        if len(set(systems)) != len(systems):
            raise ValueError("a system is listed twice")
        return systems


@dataclass
class EvalResult:
    eval_id: str
    folder: Path
    summary: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)
    answered: int = 0  # pairs answered by this run
    judged: int = 0  # open answers judged by this run

    @property
    def results_path(self) -> Path:
        return EvalLayout(self.folder).results


# ----- the systems ----------------------------------------------------------------------------------------

@dataclass
class SystemSpec:
    """A system to score: its label, the GGUF it runs (None when missing) and whether it retrieves."""

    name: str
    model_path: Path | None
    rag: bool
    missing_reason: str = ""

    def identity(self) -> dict[str, Any]:
        if self.model_path is None:
            return {"name": self.name, "missing": self.missing_reason}
        stat = self.model_path.stat()
        return {"name": self.name, "model": str(self.model_path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def resolve_system(project, name: str, events: Events, cancel: CancelToken) -> SystemSpec:
    """Which GGUF a system name means (as chat resolves it); a missing model gives the reason instead."""
    from doctune.core.chat import model_path, split_name, uses_base
    from doctune.core.export import base_gguf

    model, rag = split_name(name)
    try:
        if uses_base(name):  # the base model's GGUF is made by the export step, here explicitly, once
            base_gguf(project, fmt=project.config.rag.gguf_format, events=events.child("export"), cancel=cancel)
        path = model_path(project, model, events=events.child("export"), cancel=cancel)
    except Cancelled:
        raise
    except Exception as exc:  # no tuned model yet, no student configured, a missing file…: skip it, say why
        return SystemSpec(name, None, rag, str(exc))
    return SystemSpec(name, Path(path).resolve(), rag)


def open_spec(project, spec: SystemSpec, backends: dict, events: Events, cancel: CancelToken):
    """Open the system on exactly the GGUF resolved for it; systems on the same file share one loaded model."""
    from doctune.core.chat import open_model

    assert spec.model_path is not None
    return open_model(project, spec.model_path, spec.rag, cancel=cancel, backends=backends)


# ----- questions -------------------------------------------------------------------------------------------

def load_questions(project, limit: int | None = None) -> list:
    from doctune.core.items import load_eval_questions_report, questions_path

    path = questions_path(project)
    report = load_eval_questions_report(path)
    if not report.items:
        why = f"{len(report.problems)} record(s) failed the schema" if report.problems else "it is missing or empty"
        raise NoQuestionsError(
            f"No held-out questions to evaluate: {path} has none ({why}).",
            hint=f"Make them with: doctune synth --eval -p {project.root}",
            window_hint="Press Held-out questions on the Synthesize page, then Run evaluation again.",
        )
    return report.items[:limit] if limit else report.items


def mc_prompt(question) -> str:
    letters = option_letters(len(question.options))
    lines = [question.question, ""] + [f"{letter}. {option}" for letter, option in zip(letters, question.options)]
    return "\n".join(lines + ["", MC_INSTRUCTION])


def _fingerprint(questions: list, specs: list[SystemSpec], settings: dict[str, Any]) -> str:
    payload = {
        "questions": [q.to_record() | {"created_at": None} for q in questions],
        "systems": [spec.identity() for spec in specs],
        "settings": settings,
        "prompt_version": PROMPT_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


# ----- answering ------------------------------------------------------------------------------------------

def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _source(hit: Any) -> dict[str, Any]:
    fields = ("chunk_id", "doc_id", "doc_title", "doc_path", "page_start", "page_end", "score", "text")
    return {name: getattr(hit, name, None) for name in fields}


def _generate(system, prompt: str, cancel: CancelToken, max_tokens: int | None) -> tuple[str, Any]:
    text = "".join(system.stream(prompt, cancel=cancel, max_tokens=max_tokens))
    answer = system.last_answer
    return (getattr(answer, "text", None) or text), answer


def _option_likelihoods(system, question) -> dict[str, Any]:
    """Log-likelihood of each option's text as the answer to the bare question (with the system's retrieved context)."""
    messages = system.prompt(question.question).messages
    logprobs = [float(system.option_logprob(messages, option)) for option in question.options]
    tokens = [system.counter().tokens(option) for option in question.options]
    return {"option_logprobs": [round(v, 5) for v in logprobs], "option_tokens": tokens,
            "likelihood_index": likelihood_choice(logprobs, tokens)}


def answer_question(system, spec: SystemSpec, question, cancel: CancelToken, max_tokens: int | None = None) -> dict[str, Any]:
    """One question through one system: the answer, its scores, timings and sources.

    ``max_tokens`` caps the generated answer only: the prompt (and the sources it shows) is the system's own, as
    in chat, whatever the cap."""
    started = time.perf_counter()
    record: dict[str, Any] = {
        "schema_version": EvalAnswer.VERSION, "question_id": question.id, "system": spec.name, "kind": question.kind,
        "doc_id": question.doc_id, "chunk_id": question.chunk_id,
    }
    prompt = mc_prompt(question) if question.kind == "mc" else question.question
    try:
        text, answer = _generate(system, prompt, cancel, max_tokens)
        record.update(
            answer=text, ttft_s=getattr(answer, "ttft_s", None), total_s=getattr(answer, "total_s", None),
            completion_tokens=getattr(answer, "completion_tokens", None),
            context_tokens=getattr(answer, "context_tokens", None),
            sources=[_source(hit) for hit in getattr(answer, "sources", None) or []],
        )
        if question.kind == "mc":
            letters = option_letters(len(question.options))
            letter = parse_choice(text, len(question.options))
            likelihoods = _option_likelihoods(system, question)
            chosen = letters[likelihoods.pop("likelihood_index")]
            record["mc"] = {"letter": letter, "letter_correct": letter == question.answer,
                            "likelihood_letter": chosen, "likelihood_correct": chosen == question.answer,
                            **likelihoods}
        else:
            record["open"] = {"f1": round(token_f1(text, question.answer), 4)}
    except Cancelled:
        raise
    except Exception as exc:  # one failed pair is recorded and scored as wrong; the others continue
        record.update(answer="", error=f"{type(exc).__name__}: {exc}"[:500], sources=[])
        if question.kind == "mc":
            record["mc"] = {"letter": None, "letter_correct": False, "likelihood_letter": None,
                            "likelihood_correct": False}
        else:
            record["open"] = {"f1": 0.0}
    record["model_s"] = round(time.perf_counter() - started, 4)
    record["rss_mb"] = round(_rss_mb(), 1)
    record["answered_at"] = now_iso()
    return record


def answer_all(
    project, store: EvalStore, specs: list[SystemSpec], questions: list, events: Events, cancel: CancelToken,
    open_system: Callable = open_spec,
) -> tuple[int, dict[str, str]]:
    """Answer every pair not answered yet; returns (pairs answered now, systems skipped with reasons).

    Systems run one after the other; a loaded model is kept while the next system uses the same file (``tuned``
    then ``tuned+rag``) and closed after the last one that needs it.
    """
    answered = store.answers()
    skipped = {spec.name: spec.missing_reason for spec in specs if spec.model_path is None}
    for name, reason in skipped.items():
        events.warning(f"Skipping {name}: {reason}", item=name)
    runnable = [spec for spec in specs if spec.model_path is not None]
    todo = {spec.name: [q for q in questions if (q.id, spec.name) not in answered] for spec in runnable}
    tracker = events.tracker(sum(len(pending) for pending in todo.values()), unit="answers", stage="eval.answer")
    backends: dict = {}
    count = 0
    try:
        with store.answer_log() as log:
            for index, spec in enumerate(runnable):
                pending = todo[spec.name]
                if pending:
                    count += _answer_system(project, spec, pending, log, backends, tracker, skipped, events, cancel,
                                            open_system)
                _close_unneeded(backends, runnable[index + 1:])
    finally:
        _close_unneeded(backends, [])
    return count, skipped


def _answer_system(project, spec: SystemSpec, pending: list, log, backends: dict, tracker, skipped: dict[str, str],
                   events: Events, cancel: CancelToken, open_system: Callable) -> int:
    cancel.raise_if_cancelled()
    try:
        system = open_system(project, spec, backends, events, cancel)
    except Cancelled:
        raise
    except Exception as exc:  # a model that does not load: skip this system, the others still run
        skipped[spec.name] = f"could not load {spec.model_path}: {exc}"
        events.warning(f"Skipping {spec.name}: {skipped[spec.name]}", item=spec.name)
        tracker.total = (tracker.total or 0) - len(pending)
        return 0
    settings = project.config.eval  # ChatSystem.stream keeps a cap within the system's own answer limit
    for done, question in enumerate(pending):
        cancel.raise_if_cancelled()
        limit = settings.mc_answer_tokens if question.kind == "mc" else settings.open_answer_tokens
        try:
            log.append(answer_question(system, spec, question, cancel, limit))
        except ChildCrashed as crash:  # the model process died: the answers so far are kept, a re-run resumes
            dead = backends.pop(spec.model_path, None)
            if dead is not None:
                dead.close()
            skipped[spec.name] = str(crash)
            events.error(f"{spec.name} stopped after {done} of {len(pending)} answers: {crash}",
                         path=str(spec.model_path), hint="Run the evaluation again to resume it.",
                         window_hint="Press Run evaluation again on the Evaluate page to resume it.")
            tracker.total = (tracker.total or 0) - (len(pending) - done)
            return done
        tracker.advance(message=f"{spec.name}: {question.id}")
    return len(pending)


def _close_unneeded(backends: dict, remaining: list[SystemSpec]) -> None:
    needed = {spec.model_path for spec in remaining}
    for path in [path for path in backends if path not in needed]:
        backends.pop(path).close()


# ----- judging --------------------------------------------------------------------------------------------

def judge_all(project, store: EvalStore, questions: list, events: Events, cancel: CancelToken,
              open_teacher: Callable | None = None) -> int:
    """Judge open answers that have no verdict yet; returns how many were judged now."""
    by_id = {q.id: q for q in questions}
    judged = store.judgments()
    pending = [record for key, record in store.answers().items()
               if record["kind"] == "open" and key not in judged and not record.get("error") and key[0] in by_id]
    if not pending:
        return 0
    try:
        if open_teacher is None:
            from doctune.core.teachers import open_teacher
        teacher = open_teacher(project)
    except Cancelled:
        raise
    except Exception as exc:
        events.warning(f"Open answers not judged: the teacher could not be opened ({exc}). "
                       "They are shown as unjudged; re-run doctune eval to judge them.",
                       window_message=f"Open answers not judged: the teacher could not be opened ({exc}). They are "
                                      "shown as unjudged; press Run evaluation again on the Evaluate page to judge "
                                      "them.")
        return 0
    try:
        _judge_pending(teacher, store, pending, by_id, project.config.eval, events, cancel)
    finally:
        close = getattr(teacher, "close", None)
        if close:
            close()
    return len(pending)


def _judge_pending(teacher, store: EvalStore, pending: list[dict], by_id: dict, settings, events: Events,
                   cancel: CancelToken) -> None:
    tracker = events.tracker(len(pending), unit="verdicts", stage="eval.judge")
    with store.judgment_log() as log:
        for record in pending:
            question = by_id[record["question_id"]]
            judgment = judge_answer(teacher, question.question, question.answer, question.source_text,
                                    record.get("answer", ""), attempts=settings.judge_attempts,
                                    max_tokens=settings.judge_max_tokens, cancel=cancel)
            if judgment.verdict is None:
                events.warning(f"Unjudged: {record['system']} on {question.id}: {judgment.reason}", item=question.id)
            log.append({"schema_version": EvalJudgment.VERSION, "question_id": question.id, "system": record["system"],
                        **judgment.as_record(), "judged_at": now_iso()})
            tracker.advance(message=f"{record['system']}: {question.id}")


# ----- results and summary --------------------------------------------------------------------------------

def merge_results(store: EvalStore, questions: list, systems: list[str], titles: dict[str, str]) -> list[dict]:
    """Answers joined with verdicts and question fields, in question × system order."""
    answers, judgments = store.answers(), store.judgments()
    merged = []
    for question in questions:
        for system in systems:
            record = answers.get((question.id, system))
            if record is None:
                continue
            record = dict(record, question=question.question, options=question.options,
                          expected=question.answer, reference=question.reference or question.answer,
                          source_text=question.source_text, doc_title=titles.get(question.doc_id, ""))
            if question.kind == "open":
                verdict = judgments.get((question.id, system))
                record["open"] = dict(record.get("open") or {},
                                      verdict=verdict["verdict"] if verdict else None,
                                      reason=verdict["reason"] if verdict else "not judged yet",
                                      judge_attempts=verdict["attempts"] if verdict else 0)
            merged.append(record)
    return merged


def document_titles(project) -> dict[str, str]:
    if not any(Path(project.lancedb_dir).iterdir()):  # questions given by hand, no documents: skip loading LanceDB
        return {}
    try:
        from doctune.core.store import list_documents

        return {doc["id"]: doc.get("name") or doc["id"][:12] for doc in list_documents(project)}
    except Exception:  # no documents table yet (questions given by hand): titles fall back to ids
        return {}


def write_outputs(project, store: EvalStore, questions: list, system_names: list[str],
                  skipped: dict[str, str]) -> dict[str, Any]:
    merged = merge_results(store, questions, system_names, document_titles(project))
    store.write_results(merged)
    comparisons = [tuple(pair.split(":", 1)) for pair in project.config.eval.compare]
    summary = summarize(merged, eval_id=store.eval_id, systems=system_names,
                        question_ids=[q.id for q in questions], skipped=skipped, comparisons=comparisons,
                        extra={"created_at": store.meta().created_at, "updated_at": now_iso(),
                               "complete": not skipped and len(merged) == len(questions) * len(system_names)})
    store.write_summary(summary)
    return summary


def select_store(project, params: EvalParams, fingerprint: str, meta: dict[str, Any]) -> EvalStore:
    if params.eval_id:
        store = open_eval(project, params.eval_id)
        if store is None:
            raise EvalNotFoundError(f"No evaluation '{params.eval_id}' in {project.eval_dir}.",
                                    hint="List them with: doctune report --list",
                                    window_hint="Press Run evaluation on the Evaluate page for a new one.")
        return store
    existing = None if params.new else find_eval(project, fingerprint)
    return existing or create_eval(project, meta)


def run(params: EvalParams, *, events: Events, cancel: CancelToken,
        open_system: Callable = open_spec, open_teacher: Callable | None = None) -> EvalResult:
    """Evaluate; re-running continues the matching evaluation and skips answered pairs."""
    from doctune.core.project import Project

    project = Project.open(params.project_dir)
    systems = params.systems or list(project.config.eval.systems)
    EvalParams(project_dir=params.project_dir, systems=systems)  # validate the configured list too
    questions = load_questions(project, params.limit)
    specs = [resolve_system(project, name, events, cancel) for name in systems]
    rag = project.config.rag.model_dump(mode="json")
    answer_limits = project.config.eval.model_dump(include={"mc_answer_tokens", "open_answer_tokens"})
    fingerprint = _fingerprint(questions, specs, {key: rag.get(key) for key in FINGERPRINT_RAG_SETTINGS} | answer_limits)
    store = select_store(project, params, fingerprint, {
        "fingerprint": fingerprint, "systems": systems, "questions": len(questions),
        "models": [spec.identity() for spec in specs],
    })
    events.log(f"Evaluation {store.eval_id}: {len(questions)} questions × {len(systems)} systems", eval_id=store.eval_id)
    answered, skipped = answer_all(project, store, specs, questions, events, cancel, open_system)
    judged = judge_all(project, store, questions, events, cancel, open_teacher) if params.judge else 0
    summary = write_outputs(project, store, questions, systems, skipped)
    return EvalResult(store.eval_id, store.folder, summary, skipped, answered, judged)
