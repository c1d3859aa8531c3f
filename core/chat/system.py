"""Chat systems: a GGUF model, with or without retrieval, behind one streaming interface.

``open_system(project, name)`` understands ``base``, ``tuned``, ``base+rag``,
``tuned+rag``, or the path of a ``.gguf`` file, optionally followed by
``+rag``. ``system.stream(question)`` yields the answer's text as it is
generated; ``system.last_answer`` then holds the whole answer with its
sources (the chunks that were in the prompt, numbered as the model saw them),
timings and token counts.
"""
from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from doctune.core.chat.backend import LlamaBackend, ProcessBackend, check_gguf_file, open_backend
from doctune.core.chat.prompt import Counter, Message, Prompt, assemble, cited_numbers
from doctune.core.errors import UserError
from doctune.core.events import CancelToken, Events
from doctune.core.rag import Hit

if TYPE_CHECKING:  # pragma: no cover
    from doctune.core.project import Project
    from doctune.core.rag import Retriever

RAG_SUFFIX = "+rag"


class SystemNameError(UserError):
    """A system name that is neither base, tuned nor a GGUF path."""


class NoBaseModel(UserError):
    """The student's base model has not been exported to GGUF yet (the ``base`` systems need it)."""


class NoTunedModel(UserError):
    """No exported, verified tuned model yet."""


@dataclass
class Answer:
    text: str
    sources: list[Hit] = field(default_factory=list)
    """The sources that were in the prompt, in the order numbered [1], [2]…"""
    cited: list[int] = field(default_factory=list)
    """Source numbers the answer cites (1-based, valid ones only)."""
    ttft_s: float | None = None
    total_s: float = 0.0
    completion_tokens: int = 0
    context_tokens: int = 0
    """Tokens of the prompt as given to the model."""
    history_kept: int = 0
    system: str = ""

    @property
    def tokens_per_s(self) -> float | None:
        generating = self.total_s - (self.ttft_s or 0.0)
        return self.completion_tokens / generating if generating > 0 and self.completion_tokens > 1 else None


class ChatSystem:
    """One model (and optionally a retriever); answers one question at a time."""

    def __init__(
        self, name: str, backend: LlamaBackend | ProcessBackend, *, retriever: Retriever | None = None, k: int = 8,
        max_answer_tokens: int = 512, temperature: float = 0.0, min_source_tokens: int = 32,
    ) -> None:
        self.name = name
        self.backend = backend
        self.retriever = retriever
        self.k = k
        self.max_answer_tokens = min(max_answer_tokens, backend.n_ctx // 2)
        self.temperature = temperature
        self.min_source_tokens = min_source_tokens
        self.last_answer: Answer | None = None
        self._last_search: tuple[tuple[str, int] | None, list[Hit]] = (None, [])

    @property
    def rag(self) -> bool:
        return self.retriever is not None

    @property
    def prompt_budget(self) -> int:
        return self.backend.n_ctx - self.max_answer_tokens

    def counter(self) -> Counter:
        backend = self.backend
        return Counter(count=backend.count_messages, truncate=backend.truncate_text, tokens=backend.count_text)

    def sources(self, question: str) -> list[Hit]:
        """Retrieved chunks for ``question`` (the last question's are kept: option scoring asks 4 times)."""
        if self.retriever is None:
            return []
        if self._last_search[0] != (question, self.k):
            self._last_search = ((question, self.k), self.retriever.search(question, k=self.k))
        return self._last_search[1]

    def prompt(self, question: str, history: Sequence[Message] = ()) -> Prompt:
        """The messages for ``question``: retrieved sources (RAG) and recent history fitted to the context."""
        return assemble(
            question, budget=self.prompt_budget, counter=self.counter(), sources=self.sources(question), history=history,
            rag=self.rag, min_source_tokens=self.min_source_tokens,
        )

    def stream(self, question: str, history: Sequence[Message] = (), cancel: CancelToken | None = None,
               max_tokens: int | None = None) -> Iterator[str]:
        """Yield the answer's text as it is generated; ``last_answer`` holds the whole answer afterwards.

        ``max_tokens`` stops this answer sooner than ``max_answer_tokens`` (an evaluation's one-letter answer). It
        leaves the prompt as chat builds it: the sources fitted to the context minus ``max_answer_tokens``, so a
        short answer is scored on the very prompt the user's chat gives, not one with more sources.
        """
        limit = self.max_answer_tokens if max_tokens is None else min(max_tokens, self.max_answer_tokens)
        started = time.perf_counter()
        self.last_answer = None
        prompt = self.prompt(question, history)
        tokens = self.backend.tokenize_prompt(prompt.messages)
        pieces: list[str] = []
        first: float | None = None
        generated = 0
        for piece, generated in self.backend.stream(  # noqa: B007 (its last value is the count)
            tokens, max_tokens=limit, temperature=self.temperature, cancel=cancel
        ):
            if first is None:
                first = time.perf_counter() - started
            pieces.append(piece)
            yield piece
        text = "".join(pieces)
        self.last_answer = Answer(
            text=text, sources=prompt.sources, cited=cited_numbers(text, len(prompt.sources)), ttft_s=first,
            total_s=time.perf_counter() - started, completion_tokens=generated, context_tokens=len(tokens),
            history_kept=prompt.history_kept, system=self.name,
        )

    def answer(self, question: str, history: Sequence[Message] = (), cancel: CancelToken | None = None) -> Answer:
        for _ in self.stream(question, history, cancel):
            pass
        assert self.last_answer is not None
        return self.last_answer

    def option_logprob(self, prompt: str | Sequence[Message], option_text: str) -> float:
        """Log-likelihood of ``option_text`` as the assistant's answer.

        ``prompt`` is a question (sources retrieved and fitted as for ``stream``)
        or ready messages (used as given).
        """
        continuation = self.backend.text_tokens(option_text)
        if isinstance(prompt, str):
            messages = assemble(
                prompt, budget=min(self.prompt_budget, self.backend.n_ctx - len(continuation)), counter=self.counter(),
                sources=self.sources(prompt),
                rag=self.rag, min_source_tokens=self.min_source_tokens,
            ).messages
        else:
            messages = list(prompt)
        return self.backend.continuation_logprob(self.backend.tokenize_prompt(messages), continuation)

    def close(self) -> None:
        self.backend.close()


def split_name(name: str) -> tuple[str, bool]:
    """``"tuned+rag"`` → ``("tuned", True)``."""
    name = name.strip()
    if name.lower().endswith(RAG_SUFFIX):
        return name[: -len(RAG_SUFFIX)].strip(), True
    return name, False


def model_path(project: Project, model: str, *, events: Events | None = None, cancel: CancelToken | None = None) -> Path:
    """The GGUF behind ``base``, ``tuned`` or a path."""
    fmt = project.config.rag.gguf_format
    if model == "base":
        return _base_path(project, fmt)
    if model == "tuned":
        return _tuned_path(project, fmt, events)
    return check_gguf_file(Path(model))


def _base_path(project: Project, fmt: str) -> Path:
    """The student's base model as a verified GGUF: exporting it is a step of its own (``base_gguf``), never a
    side effect of opening a chat."""
    from doctune.core.gguf_files import find_base_gguf

    path = find_base_gguf(project, fmt)
    if path is None:
        raise NoBaseModel(
            f"The student {project.config.student.model} has not been exported as a {fmt} GGUF yet.",
            hint=f"Export it once with: doctune export --base -p {project.root}",
            window_hint="The Compare page exports the base model before its first answer: ask there again.",
        )
    return path


def uses_base(name: str) -> bool:
    """Whether the system ``name`` (``base``, ``base+rag``…) runs the student's base model."""
    return split_name(name)[0] == "base"


def _tuned_path(project: Project, fmt: str, events: Events | None) -> Path:
    """The newest complete run's verified ``fmt`` file; else, said in a warning, the newest verified one of
    an older run (the newest run's export is missing or failed verification)."""
    from doctune.core.gguf_files import ready_gguf
    from doctune.core.runs import latest_complete_run

    newest = latest_complete_run(project)
    path = ready_gguf(project, run_id=newest.name, fmt=fmt) if newest is not None else None
    if path is not None:
        return Path(path)
    path = ready_gguf(project, fmt=fmt)
    if path is None:
        raise NoTunedModel(
            f"No tuned model exported as {fmt} and verified yet in {project.root}.",
            hint=f"Make one with: doctune train -p {project.root}, then doctune export -p {project.root}",
            window_hint="Press Train on the Train page, then Export on the Export page.",
        )
    if events is not None and newest is not None:
        events.warning(
            f"'tuned' is the model of run {Path(path).parent.parent.name}: the newest run, {newest.name}, has no "
            f"verified {fmt} export. Export it with: doctune export -p {project.root} --run {newest.name}",
            window_message=f"'tuned' is the model of run {Path(path).parent.parent.name}: the newest run, "
                           f"{newest.name}, has no verified {fmt} export. Press Export on the Export page to "
                           "export it.",
        )
    return Path(path)


def check_model_name(model: str) -> None:
    if model in ("base", "tuned") or model.lower().endswith(".gguf") or Path(model).expanduser().exists():
        return
    raise SystemNameError(
        f"Unknown system '{model}'.",
        hint="Use base, tuned, base+rag, tuned+rag, or the path of a .gguf file (optionally followed by +rag).",
    )


def open_system(
    project: Project, name: str, *, events: Events | None = None, cancel: CancelToken | None = None,
    backends: dict[Path, LlamaBackend | ProcessBackend] | None = None, isolated: bool = True,
) -> ChatSystem:
    """Load the model (and the search index for ``+rag``) behind a system name.

    ``backends`` lets several systems on the same GGUF share one loaded model
    (e.g. ``tuned`` and ``tuned+rag`` answered one after the other). Unless
    ``isolated`` is false, the model runs in a child process, so a llama.cpp
    crash raises ``ChildCrashed`` naming the file instead of ending this one.
    """
    model, rag = split_name(name)
    check_model_name(model)
    retriever = _retriever(project) if rag else None  # fails early, before a model loads, when there is no index
    path = model_path(project, model, events=events, cancel=cancel)
    return open_model(project, path, rag, name=name, backends=backends, isolated=isolated, cancel=cancel,
                      retriever=retriever)


def _retriever(project: Project) -> Retriever:
    from doctune.core.rag import Retriever

    return Retriever(project)


def open_model(
    project: Project, path: Path, rag: bool, *, name: str | None = None, cancel: CancelToken | None = None,
    backends: dict[Path, LlamaBackend | ProcessBackend] | None = None, isolated: bool = True,
    retriever: Retriever | None = None,
) -> ChatSystem:
    """A chat system on the GGUF at ``path`` (already resolved), retrieving when ``rag``; ``name`` labels it
    (default: the path, with ``+rag``). See ``open_system`` for ``backends`` and ``isolated``."""
    settings = project.config.rag
    if rag and retriever is None:
        retriever = _retriever(project)
    path = check_gguf_file(path)
    name = name or f"{path}{RAG_SUFFIX if rag else ''}"
    backend = backends.get(path) if backends is not None else None
    if backend is None:
        backend = open_backend(path, n_ctx=settings.n_ctx, n_gpu_layers=settings.n_gpu_layers, isolated=isolated,
                               cancel=cancel)
        if backends is not None:
            backends[path] = backend
    return ChatSystem(
        name, backend, retriever=retriever, k=settings.k, max_answer_tokens=settings.max_answer_tokens,
        temperature=settings.temperature,
    )
