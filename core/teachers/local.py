"""A local GGUF teacher run in process by llama-cpp-python.

Structured requests are decoded under a grammar made from the JSON schema
(bounded, control-character-free strings), so even a small model returns a
parseable object. Every generation also stops at a hard token limit counted
by our own stopping criterion: llama.cpp skips its ``max_tokens`` check while
an incomplete UTF-8 sequence is pending (see FIELD-NOTES).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from doctune.core.events import Events
from doctune.core.hub import hub_offline, progress_bar_class
from doctune.core.teachers.base import Teacher, TeacherCallError, TeacherError, TeacherReply, extract_json

OWN_CTX_WITH_ENGINE = 256
"""Context of the ``Llama`` object itself when a batched engine (with its own context) serves the requests."""


class TokenLimit:
    """Stopping criterion: true once ``limit`` tokens have been sampled."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sampled = 0

    def __call__(self, input_ids: Any, logits: Any) -> bool:
        self.sampled += 1
        return self.sampled > self.limit


def resolve_model_file(settings, offline: bool, events: Events | None = None) -> Path:
    """The GGUF file named by the settings, downloaded from the hub if needed (never when offline).

    A download is reported as ``progress`` events in bytes (``events``), so the window can show it.
    """
    if settings.model_path:
        path = Path(settings.model_path).expanduser()
        if not path.is_file():
            raise TeacherError(f"The teacher model file {path} does not exist.",
                               "Set teacher.model_path in doctune.toml to a .gguf file on this machine.",
                               window_hint="On the Teacher page, press Choose a file… to pick a .gguf file on this "
                                           "computer, then press Save.")
        return path
    if settings.hf_repo and settings.hf_file:
        from huggingface_hub import hf_hub_download

        offline = hub_offline(offline)
        bar = progress_bar_class(events or Events(), f"downloading {settings.hf_file}")
        try:
            return Path(hf_hub_download(settings.hf_repo, settings.hf_file, local_files_only=offline, tqdm_class=bar))
        except Exception as exc:  # hub errors come in many types; the message says which
            hint = ("The project is offline: download the file elsewhere and set teacher.model_path."
                    if offline else "Check the repo and file names and the network connection.")
            window_hint = ("The project works offline: download the file on another computer, then on the Teacher "
                           "page press Choose a file… to pick it and press Save." if offline else
                           "Check the network connection, or on the Teacher page press Choose a file… to pick a "
                           ".gguf file you already have and press Save.")
            raise TeacherError(f"Could not get {settings.hf_file} from {settings.hf_repo}: {exc}", hint,
                               window_hint) from None
    raise TeacherError("No local teacher model is set.",
                       "Set teacher.model_path (a .gguf file) or teacher.hf_repo and teacher.hf_file in doctune.toml.",
                       window_hint="On the Teacher page, choose 'Local model file (GGUF)', press Choose a file… to "
                                   "pick a .gguf file, and press Save (or choose a server there).")


class LocalTeacher(Teacher):
    """One GGUF model in a child process (a llama.cpp crash there is a ``TeacherError`` here, naming the file).

    With ``parallel`` = 1 requests are served one at a time. With more, the teacher takes ``parallel`` requests
    at once (``concurrency``: the synthesis pipeline runs that many threads) and a dispatcher thread hands them
    to the child's batched engine, which generates them together, continuously: a request that arrives while
    others are generating joins them at the next step (see ``core/teachers/batch.py``).
    """

    def __init__(self, model_file: str | Path, *, n_ctx: int = 4096, n_gpu_layers: int = -1,
                 temperature: float = 0.7, max_tokens: int = 1024, n_threads: int | None = None,
                 parallel: int = 1) -> None:
        from doctune.core.isolation import ChildCrashed, ChildObject

        if parallel < 1:
            raise TeacherError(f"teacher.parallel must be at least 1 (it is {parallel}).")
        self.model_file = Path(model_file)
        self.name = f"local:{self.model_file.name}"
        self.concurrency = parallel
        self._child = None
        self._dispatcher: Dispatcher | None = None
        try:
            self._child = ChildObject(LocalModel, self.model_file, label=self.model_file, doing="generating with the teacher",
                                      n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, temperature=temperature,
                                      max_tokens=max_tokens, n_threads=n_threads,
                                      batch_slots=parallel if parallel > 1 else 0)
        except ChildCrashed as crash:
            raise TeacherError(str(crash), "Try another quantization of the teacher (an F16 or Q8_0 file).") from None
        if parallel > 1:
            self._dispatcher = Dispatcher(self._child, self.model_file.name)

    def complete(self, messages, schema=None, max_tokens=512, *, temperature=None, seed=None) -> TeacherReply:
        from doctune.core.isolation import ChildCrashed

        if self._child is None:
            raise TeacherError(f"The local teacher {self.model_file.name} is closed.")
        if self._dispatcher is not None:
            return self._dispatcher.complete({"messages": messages, "schema": schema, "max_tokens": max_tokens,
                                              "temperature": temperature, "seed": seed})
        try:
            return self._child.call("complete", messages, schema, max_tokens, temperature=temperature, seed=seed)
        except ChildCrashed as crash:
            raise _crashed(crash) from None

    def close(self) -> None:
        dispatcher, self._dispatcher = getattr(self, "_dispatcher", None), None
        if dispatcher is not None:
            dispatcher.close()
        child, self._child = getattr(self, "_child", None), None
        if child is not None:
            child.close()


def _crashed(crash) -> TeacherError:
    return TeacherError(str(crash), "Re-run the step to resume; try another quantization of the teacher "
                                    "(an F16 or Q8_0 file) if it happens again.")


class Dispatcher:
    """Gathers the requests of the caller threads and feeds them to the child's batched engine (``serve``).

    One thread talks to the child: it sends the requests that arrived since its last call and gets back the
    replies finished meanwhile; a call returns at least every ``SLICE_S`` while a slot is free, so a request
    never waits long to join. A crash of the child fails every waiting request with a ``TeacherError``.
    """

    SLICE_S = 0.05

    def __init__(self, child, label: str) -> None:
        import queue
        import threading

        self._child = child
        self._inbox: queue.Queue = queue.Queue()
        self._waiting: dict[int, Any] = {}  # key → [event, result]
        self._keys = iter(range(1 << 62))
        self._lock = threading.Lock()
        self._broken: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name=f"teacher-batch-{label}", daemon=True)
        self._thread.start()

    def complete(self, request: dict[str, Any]) -> TeacherReply:
        import threading

        entry = [threading.Event(), None]
        with self._lock:
            if self._broken is not None:
                raise self._broken
            key = next(self._keys)
            self._waiting[key] = entry
        self._inbox.put((key, request))
        entry[0].wait()
        if isinstance(entry[1], BaseException):
            raise entry[1]
        return entry[1]

    def _loop(self) -> None:
        from doctune.core.isolation import ChildCrashed

        try:
            self._serve()
        except ChildCrashed as crash:
            self._fail_all(_crashed(crash))
        except BaseException as exc:  # noqa: BLE001 — no caller may wait forever: each gets the error
            self._fail_all(TeacherCallError(f"local teacher: {exc}"))

    def _serve(self) -> None:
        import queue

        active = 0
        while True:
            new = [self._inbox.get()] if active == 0 else []
            while True:
                try:
                    new.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            if any(item is None for item in new):
                self._fail_all(TeacherError("The local teacher is closed."))
                return
            active += len(new)
            for key, result in self._child.call("serve", new, self.SLICE_S):
                active -= 1
                with self._lock:
                    entry = self._waiting.pop(key)
                entry[1] = result
                entry[0].set()

    def _fail_all(self, error: BaseException) -> None:
        with self._lock:
            self._broken = error
            waiting, self._waiting = self._waiting, {}
        for entry in waiting.values():
            entry[1] = error
            entry[0].set()

    def close(self) -> None:
        self._inbox.put(None)
        self._thread.join()


class LocalModel:
    """The teacher's model itself, in the process that loads it (a child of ``LocalTeacher``).

    ``complete`` serves one request with ``Llama.create_completion``; with ``batch_slots`` (> 0) a
    :class:`~doctune.core.teachers.batch.BatchEngine` of that many sequences serves every request (``serve``,
    ``complete_many``, and ``complete`` too).
    """

    def __init__(self, model_file: Path, *, n_ctx: int, n_gpu_layers: int, temperature: float, max_tokens: int,
                 n_threads: int | None, batch_slots: int = 0) -> None:
        from doctune.core.llamacpp import load_llama

        self.model_file = Path(model_file)
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._grammars: dict[str, Any] = {}
        self._engine = None
        try:
            # with the engine, the Llama's own context is never used: keep it small (the engine has its own)
            self._llm = load_llama(self.model_file, n_ctx=min(n_ctx, OWN_CTX_WITH_ENGINE) if batch_slots else n_ctx,
                                   n_gpu_layers=n_gpu_layers, n_threads=n_threads,
                                   n_threads_batch=n_threads)  # prompts, and every step of a batch
            if batch_slots > 0:
                from doctune.core.teachers.batch import BatchEngine

                self._engine = BatchEngine(self._llm, batch_slots, n_ctx)
        except (ValueError, RuntimeError) as exc:
            raise TeacherError(f"llama.cpp could not load {self.model_file}: {exc}",
                               "Check that the file is a complete GGUF model.") from None
        self._format = self._chat_formatter()

    def _chat_formatter(self):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter, format_chatml

        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            return lambda messages: format_chatml(messages=messages)
        model = self._llm._model
        eos = model.token_get_text(self._llm.token_eos()) if self._llm.token_eos() != -1 else ""
        bos = model.token_get_text(self._llm.token_bos()) if self._llm.token_bos() != -1 else ""
        formatter = Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos)
        return lambda messages: formatter(messages=messages)

    def _grammar(self, schema: dict[str, Any]):
        import json

        from llama_cpp import LlamaGrammar

        from doctune.core.teachers.grammar import schema_to_gbnf

        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = LlamaGrammar.from_string(schema_to_gbnf(schema), verbose=False)
        return self._grammars[key]

    def _limit(self, max_tokens: int) -> int:
        return max(1, min(max_tokens, self.max_tokens))

    def complete(self, messages, schema=None, max_tokens=512, *, temperature=None, seed=None) -> TeacherReply:
        from llama_cpp import StoppingCriteriaList

        if self._engine is not None:
            reply = self.complete_many([{"messages": messages, "schema": schema, "max_tokens": max_tokens,
                                         "temperature": temperature, "seed": seed}])[0]
            if isinstance(reply, TeacherCallError):
                raise reply
            return reply
        limit = self._limit(max_tokens)
        prompt = self._format(messages)
        stop_limit = TokenLimit(limit)
        criteria = [stop_limit] + list(prompt.stopping_criteria or [])
        started = time.perf_counter()
        grammar = self._grammar(schema) if schema else None
        try:
            result = self._llm.create_completion(
                prompt.prompt, grammar=grammar, max_tokens=limit, stop=prompt.stop,
                temperature=self.temperature if temperature is None else temperature,
                seed=seed, stopping_criteria=StoppingCriteriaList(criteria),
            )
        except (ValueError, RuntimeError) as exc:  # prompt too long for the context, decode failure
            raise TeacherCallError(f"local teacher: {exc}") from None
        text = result["choices"][0]["text"]
        usage = result.get("usage") or {}
        return TeacherReply(
            text=text, data=extract_json(text) if schema else None,
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=min(int(usage.get("completion_tokens", 0)), limit),
            seconds=time.perf_counter() - started,
            meta={"hit_token_limit": stop_limit.sampled > limit},
        )

    # ----- the batched path ----------------------------------------------------------------------
    def _prompt_tokens(self, text: str) -> list[int]:
        """The tokens ``create_completion`` evaluates for a text prompt (its BOS/EOS rules)."""
        llm, model = self._llm, self._llm._model
        bos, cls, sep = llm.token_bos(), model.token_cls(), model.token_sep()
        first = [cls if cls != -1 else bos] if model.add_bos_token() and (cls if cls != -1 else bos) != -1 else []
        last = [sep if sep != -1 else llm.token_eos()] if model.add_eos_token() or sep != -1 else []
        return first + (llm.tokenize(text.encode("utf-8"), add_bos=False, special=True) if text else []) + last

    def _job(self, key: Any, request: dict[str, Any]):
        """A ``BatchEngine`` job for ``request`` (the keyword arguments of ``complete``)."""
        schema = request.get("schema")
        temperature = request.get("temperature")
        prompt = self._format(request["messages"])
        job = self._engine.job(key, self._prompt_tokens(prompt.prompt), limit=self._limit(request.get("max_tokens", 512)),
                               temperature=self.temperature if temperature is None else temperature,
                               seed=request.get("seed"), grammar=self._grammar(schema) if schema else None,
                               stops=[prompt.stop] if isinstance(prompt.stop, str) else list(prompt.stop or []))
        job.schema = schema
        return job

    @staticmethod
    def _reply(job) -> TeacherReply | TeacherCallError:
        if job.error is not None:
            return job.error
        text = job.text.decode("utf-8", errors="ignore")
        return TeacherReply(
            text=text, data=extract_json(text) if job.schema else None, prompt_tokens=len(job.prompt),
            completion_tokens=min(len(job.completion), job.limit), seconds=time.perf_counter() - job.started,
            meta={"hit_token_limit": job.samples >= job.limit},
        )

    def serve(self, new: list[tuple[Any, dict[str, Any]]], slice_s: float = 0.1) -> list[tuple[Any, Any]]:
        """Take ``new`` requests (key, ``complete``'s keyword arguments), generate until one finishes (or, with a
        slot free for more, until ``slice_s`` has passed); (key, reply or ``TeacherCallError``) of those finished."""
        finished: list[tuple[Any, Any]] = []
        for key, request in new:
            try:
                self._engine.submit(self._job(key, request))
            except TeacherCallError as exc:
                finished.append((key, exc))
        started = time.perf_counter()
        while self._engine.busy and not finished:
            finished += [(job.key, self._reply(job)) for job in self._engine.step()]
            if self._engine.free_slots > 0 and time.perf_counter() - started >= slice_s:
                break
        return finished

    def complete_many(self, requests: list[dict[str, Any]]) -> list[TeacherReply | TeacherCallError]:
        """Replies to ``requests`` (``complete``'s keyword arguments), generated together."""
        results: dict[int, Any] = {}
        jobs = []
        for index, request in enumerate(requests):
            try:
                jobs.append(self._job(index, request))
            except TeacherCallError as exc:
                results[index] = exc
        for job in self._engine.run(jobs):
            results[job.key] = self._reply(job)
        return [results[index] for index in range(len(requests))]

    def close(self) -> None:
        engine, self._engine = getattr(self, "_engine", None), None
        if engine is not None:
            engine.close()
        llm = getattr(self, "_llm", None)
        if llm is not None:
            llm.close()
            self._llm = None
