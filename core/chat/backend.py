"""A GGUF model in process through llama-cpp-python: render, count, stream, score.

The prompt is rendered with the chat template stored in the GGUF (ChatML when
the file has none) and tokenized here, so the prompt that is measured is the
prompt that runs. Generation samples tokens itself and decodes them one at a
time, so a model that emits invalid UTF-8 streams U+FFFD at once instead of
stalling (see ``stream``), and the token limit always holds.
"""
from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from doctune.core.chat.pieces import PieceDecoder
from doctune.core.errors import UserError
from doctune.core.events import Cancelled, CancelToken

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
GGUF_MAGIC = b"GGUF"


class ModelFileError(UserError):
    """A GGUF file that is missing or cannot be loaded."""


def check_gguf_file(path: Path) -> Path:
    """The file, resolved, if it exists and starts like a GGUF; else a ``ModelFileError`` naming it."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise ModelFileError(f"Model file not found: {path}", hint="Check the path, or export a model with: doctune export",
                             window_hint="Check the path, or press Export on the Export page to export the model.")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise ModelFileError(
            f"{path} is not a GGUF model file (it does not start with 'GGUF').",
            hint="Give the path of a .gguf file, or export the model again with: doctune export",
            window_hint="Pick a .gguf file (Add a model file… on the Compare page), or press Export on the Export "
                        "page to export the model again.",
        )
    return path


def _unloadable(path: Path, exc: BaseException) -> ModelFileError:
    return ModelFileError(
        f"{path} could not be loaded by llama.cpp ({exc}); the file may be damaged or incomplete.",
        hint="Export the model again with: doctune export, or pick another .gguf file.",
        window_hint="Press Export on the Export page to export the model again, or pick another .gguf file (Add a "
                    "model file… on the Compare page).",
    )


def trained_context_length(path: Path) -> int | None:
    """The context length the model was trained with, from the GGUF header."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
        arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
        field = reader.fields.get(f"{arch}.context_length")
        return int(field.parts[field.data[0]][0]) if field is not None else None
    except Exception as exc:  # any parse failure means a damaged file
        raise _unloadable(path, exc) from None


class LlamaBackend:
    """One loaded GGUF model. Not thread-safe: one generation at a time."""

    def __init__(self, path: Path, *, n_ctx: int = 4096, n_gpu_layers: int = -1, seed: int = 0) -> None:
        self.path = check_gguf_file(path)
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        from doctune.core.llamacpp import load_llama

        trained = trained_context_length(self.path)
        try:
            self.llm = load_llama(
                self.path, n_ctx=min(n_ctx, trained) if trained else n_ctx, n_gpu_layers=n_gpu_layers, seed=seed,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise _unloadable(self.path, exc) from None
        self.n_ctx = self.llm.n_ctx()
        self._seed = seed or llama_cpp.LLAMA_DEFAULT_SEED  # advanced per answer as create_completion does: same answers
        self._vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self.eos_text = self._token_text(self.llm.token_eos())
        self.bos_id = self.llm.token_bos()
        template = self.llm.metadata.get("tokenizer.chat_template") or CHATML
        self.formatter = Jinja2ChatFormatter(template, eos_token=self.eos_text, bos_token=self._token_text(self.bos_id))

    def context_size(self) -> int:
        return self.n_ctx

    def _token_text(self, token: int) -> str:
        if token is None or token < 0:
            return ""
        return self.llm.detokenize([token], special=True).decode("utf-8", errors="ignore")

    # ----- measuring -------------------------------------------------------------------------
    def render(self, messages: Sequence[dict]) -> str:
        return self.formatter(messages=list(messages)).prompt

    def tokenize_prompt(self, messages: Sequence[dict]) -> list[int]:
        tokens = self.llm.tokenize(self.render(messages).encode("utf-8"), add_bos=True, special=True)
        if len(tokens) >= 2 and tokens[0] == tokens[1] == self.bos_id:  # template wrote BOS and llama.cpp added one
            tokens = tokens[1:]
        return tokens

    def count_messages(self, messages: Sequence[dict]) -> int:
        return len(self.tokenize_prompt(messages))

    def text_tokens(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def count_text(self, text: str) -> int:
        return len(self.text_tokens(text))

    def truncate_text(self, text: str, n_tokens: int) -> str:
        tokens = self.text_tokens(text)[: max(n_tokens, 0)]
        return self.llm.detokenize(tokens).decode("utf-8", errors="ignore")

    # ----- generating ------------------------------------------------------------------------
    def stream(
        self, prompt_tokens: list[int], *, max_tokens: int, temperature: float = 0.0, cancel: CancelToken | None = None
    ) -> Iterator[tuple[str, int]]:
        """Yield ``(text piece, tokens generated so far)``; stops at EOS, the stop text or ``max_tokens``.

        Tokens are sampled with ``Llama.generate`` and decoded here, one token
        at a time (``PieceDecoder``), instead of through ``create_completion``'s
        streaming: that one holds back all text after an invalid UTF-8 byte
        until the end and re-detokenizes the held tokens for every new token
        (cubic: 512 such tokens took 36 s without a single piece). Sampling
        settings and the seed sequence are those ``create_completion`` used, so
        answers are unchanged. ``cancel`` is checked after every token.
        """
        limit = min(max_tokens, self.n_ctx - len(prompt_tokens))
        if limit <= 0:
            raise ValueError(f"the prompt ({len(prompt_tokens)} tokens) fills the context window ({self.n_ctx})")
        self._seed = random.Random(self._seed).randint(0, 2**32)
        self.llm.set_seed(self._seed)
        decoder = PieceDecoder(self.eos_text)
        generated = 0
        tokens = self.llm.generate(
            prompt_tokens, temp=temperature, top_k=1 if temperature == 0 else 40, top_p=0.95, min_p=0.05,
            repeat_penalty=1.0,
        )
        try:
            for token in tokens:
                generated += 1
                if (cancel is not None and cancel.cancelled) or self._ends_generation(token):
                    break
                piece = decoder.feed(self.llm.detokenize([token]))
                if piece:
                    yield piece, generated
                if decoder.stopped or generated >= limit:
                    break
        finally:
            tokens.close()
        if cancel is not None and cancel.cancelled:
            raise Cancelled()
        tail = decoder.finish()
        if tail:
            yield tail, generated

    def _ends_generation(self, token: int) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    # ----- scoring ---------------------------------------------------------------------------
    def continuation_logprob(self, prompt_tokens: list[int], continuation: list[int]) -> float:
        """Sum of log-probabilities of ``continuation`` after ``prompt_tokens`` (KV cache of a shared prefix reused)."""
        import llama_cpp

        llm = self.llm
        if len(prompt_tokens) + len(continuation) > self.n_ctx:
            raise ValueError("prompt and continuation exceed the context window")
        reusable = llama_cpp.Llama.longest_token_prefix(llm.input_ids[: llm.n_tokens].tolist(), prompt_tokens)
        llm.n_tokens = min(reusable, len(prompt_tokens) - 1)
        llm.eval(prompt_tokens[llm.n_tokens:])
        total = 0.0
        for token in continuation:
            total += float(_log_softmax(self._last_logits())[token])
            llm.eval([token])
        return total if math.isfinite(total) else float("-inf")

    def _last_logits(self) -> np.ndarray:
        import llama_cpp

        pointer = llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.llm.n_vocab(),)).astype(np.float64)

    def close(self) -> None:
        self.llm.close()


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


class ProcessBackend:
    """A :class:`LlamaBackend` in a child process (``core.isolation``), with the same methods.

    A crash of llama.cpp ends only the child: the call in progress raises
    ``ChildCrashed`` naming the file, and this process (the window, a step) goes on.
    """

    def __init__(self, path: Path, *, n_ctx: int = 4096, n_gpu_layers: int = -1, seed: int = 0,
                 cancel: CancelToken | None = None) -> None:
        from doctune.core.isolation import ChildObject

        self.path = check_gguf_file(path)
        self._child = ChildObject(LlamaBackend, self.path, label=self.path, doing="answering with this model",
                                  cancel=cancel, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, seed=seed)
        self.n_ctx = self._child.call("context_size")

    @property
    def pid(self) -> int | None:
        """The child process's id (tests kill it to check that a crash is contained)."""
        return self._child.pid

    def render(self, messages: Sequence[dict]) -> str:
        return self._child.call("render", list(messages))

    def tokenize_prompt(self, messages: Sequence[dict]) -> list[int]:
        return self._child.call("tokenize_prompt", list(messages))

    def count_messages(self, messages: Sequence[dict]) -> int:
        return self._child.call("count_messages", list(messages))

    def text_tokens(self, text: str) -> list[int]:
        return self._child.call("text_tokens", text)

    def count_text(self, text: str) -> int:
        return self._child.call("count_text", text)

    def truncate_text(self, text: str, n_tokens: int) -> str:
        return self._child.call("truncate_text", text, n_tokens)

    def stream(
        self, prompt_tokens: list[int], *, max_tokens: int, temperature: float = 0.0, cancel: CancelToken | None = None
    ) -> Iterator[tuple[str, int]]:
        """As ``LlamaBackend.stream``; ``cancel`` stops the child's generation after its current token."""
        return self._child.iterate("stream", prompt_tokens, max_tokens=max_tokens, temperature=temperature,
                                   cancel=cancel)

    def continuation_logprob(self, prompt_tokens: list[int], continuation: list[int]) -> float:
        return self._child.call("continuation_logprob", prompt_tokens, continuation)

    def close(self) -> None:
        self._child.close()


def open_backend(path: Path, *, n_ctx: int = 4096, n_gpu_layers: int = -1, seed: int = 0, isolated: bool = True,
                 cancel: CancelToken | None = None) -> LlamaBackend | ProcessBackend:
    """The model behind ``path``: in a child process (the default: a llama.cpp crash stays there) or in this one."""
    if isolated:
        return ProcessBackend(path, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, seed=seed, cancel=cancel)
    return LlamaBackend(path, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, seed=seed)
