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
                               "Set teacher.model_path in doctune.toml to a .gguf file on this machine.")
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
            raise TeacherError(f"Could not get {settings.hf_file} from {settings.hf_repo}: {exc}", hint) from None
    raise TeacherError("No local teacher model is set.",
                       "Set teacher.model_path (a .gguf file) or teacher.hf_repo and teacher.hf_file in doctune.toml.")


class LocalTeacher(Teacher):
    """One GGUF model in a child process (a llama.cpp crash there is a ``TeacherError`` here, naming the file);
    requests are served one at a time."""

    concurrency = 1

    def __init__(self, model_file: str | Path, *, n_ctx: int = 4096, n_gpu_layers: int = -1,
                 temperature: float = 0.7, max_tokens: int = 1024, n_threads: int | None = None) -> None:
        from doctune.core.isolation import ChildCrashed, ChildObject

        self.model_file = Path(model_file)
        self.name = f"local:{self.model_file.name}"
        self._child = None
        try:
            self._child = ChildObject(LocalModel, self.model_file, label=self.model_file, doing="generating with the teacher",
                                      n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, temperature=temperature,
                                      max_tokens=max_tokens, n_threads=n_threads)
        except ChildCrashed as crash:
            raise TeacherError(str(crash), "Try another quantization of the teacher (an F16 or Q8_0 file).") from None

    def complete(self, messages, schema=None, max_tokens=512, *, temperature=None, seed=None) -> TeacherReply:
        from doctune.core.isolation import ChildCrashed

        if self._child is None:
            raise TeacherError(f"The local teacher {self.model_file.name} is closed.")
        try:
            return self._child.call("complete", messages, schema, max_tokens, temperature=temperature, seed=seed)
        except ChildCrashed as crash:
            raise TeacherError(str(crash), "Re-run the step to resume; try another quantization of the teacher "
                                           "(an F16 or Q8_0 file) if it happens again.") from None

    def close(self) -> None:
        child, self._child = getattr(self, "_child", None), None
        if child is not None:
            child.close()


class LocalModel:
    """The teacher's model itself, in the process that loads it (a child of ``LocalTeacher``)."""

    def __init__(self, model_file: Path, *, n_ctx: int, n_gpu_layers: int, temperature: float, max_tokens: int,
                 n_threads: int | None) -> None:
        from doctune.core.llamacpp import load_llama

        self.model_file = Path(model_file)
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._grammars: dict[str, Any] = {}
        try:
            self._llm = load_llama(self.model_file, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, n_threads=n_threads)
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

    def complete(self, messages, schema=None, max_tokens=512, *, temperature=None, seed=None) -> TeacherReply:
        from llama_cpp import StoppingCriteriaList

        limit = max(1, min(max_tokens, self.max_tokens))
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

    def close(self) -> None:
        llm = getattr(self, "_llm", None)
        if llm is not None:
            llm.close()
            self._llm = None
