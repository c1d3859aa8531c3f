"""Several generations at once in one llama.cpp context: the batched engine of the local teacher.

``Llama.create_completion`` generates one sequence at a time, and each step of
a small model is mostly per-token overhead (reading the weights once per
token), so evaluating the next token of 8 sequences in one ``llama_decode``
costs little more than one. :class:`BatchEngine` keeps ``parallel`` *slots*
(llama.cpp sequence ids) in a context whose KV cache holds ``n_ctx`` tokens for
each, and runs *continuous batching*: every step is one ``llama_batch`` with
the next token of every generating slot plus prompt tokens of new requests;
a finished slot takes the next request at once.

Prompt prefixes are reused: a new request starts from the longest prefix of
its prompt already in the cache (the chat template and the passage, when the
request comes from the same chunk as another one), kept in place or copied
from another slot with ``llama_memory_seq_cp``; a request whose prefix is still
being evaluated for another slot waits one step for it instead of evaluating
it twice.

Each request has its own sampler chain, built like ``Llama._init_sampler``
(so at temperature 0 it picks the same tokens as the one-at-a-time path), its
own grammar, and the same stopping rules as ``create_completion``, including
its stop strings. The hard token limit is our own: a request never gets more
than ``limit`` completion tokens, whatever bytes they decode to.

One limit of "the same tokens": llama.cpp's CPU matrix product takes another
kernel for one token (``vec_dot``) than for two or more (llamafile's
``sgemm`` refuses ``n < 2``), and the two round differently. Logits of a
sequence decoded beside others therefore differ from its one-at-a-time
logits in the last bits, and where two tokens are within that of each other
(a random model repeating itself) greedy decoding may take the other one.
Which sequences share a step depends on when requests arrive, so such a
near-tie can also go either way between two batched runs.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from doctune.core.teachers.base import TeacherCallError

N_BATCH = 512
"""Tokens in one ``llama_batch`` (prompt tokens beyond it are evaluated over several steps)."""


@dataclass
class Job:
    """One request in the engine: what to evaluate, how to sample, and what it produced so far."""

    key: Any
    prompt: list[int]
    limit: int  # the hard limit of sampled tokens (the caller's max_tokens)
    room: int  # completion tokens that fit in the context after the prompt
    sampler: Any
    stops: list[bytes]
    pending: list[int] = field(default_factory=list)  # tokens to evaluate next
    completion: list[int] = field(default_factory=list)
    text: bytes = b""
    samples: int = 0  # tokens sampled, the end-of-generation token included
    multibyte: int = 0
    stopped_text: bytes | None = None  # the text cut at a stop string
    waits_for: tuple[int, int] | None = None  # (slot, tokens) of a prefix another slot is evaluating
    started: float = field(default_factory=time.perf_counter)
    done: bool = False
    error: TeacherCallError | None = None
    schema: Any = None


@dataclass
class Slot:
    """A llama.cpp sequence id, the tokens its KV cache holds (``known``; the first ``n_past`` evaluated)."""

    seq: int
    known: list[int] = field(default_factory=list)
    n_past: int = 0
    job: Job | None = None


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def pending_multibyte(text: bytes, due: int) -> int:
    """``create_completion``'s count of tokens to skip before ``text`` is checked again: a UTF-8 lead byte
    near its end sets it, else the count ``due`` carried from the previous token stays."""
    for k, char in enumerate(text[-3:]):
        k = 3 - k
        for num, pattern in ((2, 192), (3, 224), (4, 240)):
            if num > k and pattern & char == pattern:
                due = num - k
    return due


class BatchEngine:
    """Continuous batching of ``parallel`` sequences over the model of ``llm`` (a loaded ``Llama``)."""

    def __init__(self, llm, parallel: int, n_ctx: int) -> None:
        import llama_cpp
        from llama_cpp import _internals as internals

        self._llm = llm
        self._native = llama_cpp
        self.parallel = parallel
        self.n_ctx = n_ctx
        params = llama_cpp.llama_context_params.from_buffer_copy(llm.context_params)
        params.n_ctx = n_ctx * parallel
        params.n_seq_max = parallel
        # One KV stream per sequence: a sequence's cells lie as they would alone, so its attention sums in the
        # same order as the one-at-a-time path's (a shared stream interleaves cells and rounds differently).
        params.kv_unified = False
        params.n_batch = params.n_ubatch = min(N_BATCH, n_ctx * parallel)
        self._ctx = internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self._batch = internals.LlamaBatch(n_tokens=params.n_batch, embd=0, n_seq_max=1, verbose=False)
        self.n_batch = params.n_batch
        self._memory = llama_cpp.llama_get_memory(self._ctx.ctx)
        self._vocab = llm._model.vocab
        self._slots = [Slot(seq) for seq in range(parallel)]
        self._queue: list[Job] = []
        self._seeds = random.Random(llm._seed)
        self.evaluated = 0  # tokens evaluated so far (prompt and generated): what prefix reuse saves shows here

    # ----- requests ------------------------------------------------------------------------------
    def job(self, key: Any, prompt: list[int], *, limit: int, temperature: float, seed: int | None,
            grammar=None, stops: list[str] | None = None) -> Job:
        """A request ready to ``submit``; raises ``TeacherCallError`` if its prompt does not fit the context."""
        if len(prompt) >= self.n_ctx:
            raise TeacherCallError(f"local teacher: Requested tokens ({len(prompt)}) exceed context window of "
                                   f"{self.n_ctx}")
        if seed is None:
            seed = self._seeds.randint(0, 2**32)
        return Job(key=key, prompt=list(prompt), limit=limit, room=self.n_ctx - len(prompt),
                   sampler=self._sampler(temperature, seed, grammar), stops=[s.encode("utf-8") for s in stops or []])

    def _sampler(self, temperature: float, seed: int, grammar):
        """The chain ``Llama._init_sampler`` builds for ``create_completion``'s default settings."""
        from llama_cpp import _internals as internals

        llm = self._llm
        sampler = internals.LlamaSampler()
        sampler.add_penalties(n_vocab=llm._n_vocab, penalty_last_n=llm.last_n_tokens_size, penalty_repeat=1.0,
                              penalty_freq=0.0, penalty_present=0.0)
        if grammar is not None:
            sampler.add_grammar(llm._model, grammar)
        if temperature < 0:
            sampler.add_dist(seed)
        elif temperature == 0:
            sampler.add_greedy()
        else:
            sampler.add_top_k(40)
            sampler.add_typical(1.0, 1)
            sampler.add_top_p(0.95, 1)
            sampler.add_min_p(0.05, 1)
            sampler.add_temp(temperature)
            sampler.add_dist(seed)
        return sampler

    def submit(self, job: Job) -> None:
        self._queue.append(job)

    @property
    def busy(self) -> bool:
        return bool(self._queue) or any(slot.job is not None for slot in self._slots)

    @property
    def free_slots(self) -> int:
        return sum(slot.job is None for slot in self._slots) - len(self._queue)

    def run(self, jobs: list[Job]) -> list[Job]:
        """Submit ``jobs`` and generate until all are done (``jobs`` in order)."""
        for job in jobs:
            self.submit(job)
        while not all(job.done for job in jobs):
            self.step()
        return jobs

    # ----- one step ------------------------------------------------------------------------------
    def step(self) -> list[Job]:
        """Start queued jobs on free slots, evaluate one batch, sample; the jobs that finished in it."""
        self._start_queued()
        planned = self._fill_batch()
        if not planned:
            return []
        try:
            self._ctx.decode(self._batch)
        except RuntimeError as exc:  # the cache cannot take the batch: fail its jobs, keep the engine usable
            return [self._fail(slot, f"local teacher: {exc}") for slot, _, _ in planned]
        self.evaluated += self._batch.batch.n_tokens
        finished = []
        for slot, count, index in planned:
            job = slot.job
            slot.n_past += count
            del job.pending[:count]
            if index is not None and self._sample(slot, index):
                finished.append(self._finish(slot))
        return finished

    def _start_queued(self) -> None:
        for slot in self._slots:
            job = slot.job
            if job is not None and job.waits_for is not None:
                source, length = job.waits_for
                if self._slots[source].n_past >= length:
                    self._copy_prefix(self._slots[source], slot, length)
        while self._queue and any(slot.job is None for slot in self._slots):
            self._place(self._queue.pop(0))

    def _place(self, job: Job) -> None:
        """Put ``job`` on the free slot that reuses the most of its prompt, or arrange a copy from another slot.

        A prefix counts when its KV is in the cache (``known[:n_past]``) or is part of the prompt another slot
        is evaluating (it will be there before that slot can finish, so waiting for it is safe).
        """
        cap = len(job.prompt) - 1  # at least one prompt token is evaluated: its logits give the first sample
        free = [slot for slot in self._slots if slot.job is None]
        slot = max(free, key=lambda s: min(common_prefix(s.known[:s.n_past], job.prompt), cap))
        own = min(common_prefix(slot.known[:slot.n_past], job.prompt), cap)
        best, source, ready = own, None, True
        for other in self._slots:
            if other is slot:
                continue
            computed = min(common_prefix(other.known[:other.n_past], job.prompt), cap)
            promised = min(common_prefix(other.job.prompt, job.prompt), cap) if other.job is not None else 0
            if max(computed, promised) > best:
                best, source, ready = max(computed, promised), other, computed >= promised
        slot.job = job
        slot.known = list(job.prompt)
        if source is None:
            self._native.llama_memory_seq_rm(self._memory, slot.seq, own, -1)
            self._start_at(slot, own)
        elif ready:
            self._copy_prefix(source, slot, best)
        else:
            self._native.llama_memory_seq_rm(self._memory, slot.seq, -1, -1)
            slot.n_past = 0
            job.waits_for = (source.seq, best)

    def _copy_prefix(self, source: Slot, slot: Slot, length: int) -> None:
        """Copy ``source``'s cache to ``slot`` and keep the first ``length`` positions (llama.cpp copies between
        streams whole)."""
        self._native.llama_memory_seq_rm(self._memory, slot.seq, -1, -1)
        self._native.llama_memory_seq_cp(self._memory, source.seq, slot.seq, -1, -1)
        self._native.llama_memory_seq_rm(self._memory, slot.seq, length, -1)
        slot.job.waits_for = None
        self._start_at(slot, length)

    @staticmethod
    def _start_at(slot: Slot, length: int) -> None:
        """``slot``'s job has the first ``length`` prompt tokens in the cache: evaluate the rest."""
        slot.n_past = length
        slot.job.pending = slot.job.prompt[length:]

    def _fill_batch(self) -> list[tuple[Slot, int, int | None]]:
        """Fill the batch: the next token of each generating slot first, then prompt tokens, up to ``n_batch``.

        Returns (slot, tokens added, batch index of its logits or None) for each slot in the batch.
        """
        batch = self._batch.batch
        batch.n_tokens = 0
        planned = []
        ready = [slot for slot in self._slots if slot.job is not None and slot.job.waits_for is None
                 and slot.job.pending]
        ready.sort(key=lambda slot: len(slot.job.pending) > 1)  # generating slots (one token) first
        for slot in ready:
            room = self.n_batch - batch.n_tokens
            if room <= 0:
                break
            tokens = slot.job.pending[:room]
            last = len(tokens) == len(slot.job.pending)
            for i, token in enumerate(tokens):
                j = batch.n_tokens
                batch.token[j] = token
                batch.pos[j] = slot.n_past + i
                batch.seq_id[j][0] = slot.seq
                batch.n_seq_id[j] = 1
                batch.logits[j] = last and i == len(tokens) - 1
                batch.n_tokens += 1
            planned.append((slot, len(tokens), batch.n_tokens - 1 if last else None))
        return planned

    def _sample(self, slot: Slot, index: int) -> bool:
        """Sample the next token of ``slot``'s job; True when the job is finished.

        The rules and their order are ``create_completion``'s (so the same tokens give the same text): the hard
        limit, end of generation, a pending UTF-8 sequence that skips the checks, stop strings, ``max_tokens``;
        except that the context's room is a hard limit too.
        """
        job = slot.job
        token = job.sampler.sample(self._ctx, index)
        job.samples += 1
        if job.samples > job.limit or self._native.llama_vocab_is_eog(self._vocab, token):
            return True
        job.completion.append(token)
        slot.known.append(token)
        job.text += self._llm._model.detokenize([token])
        job.pending = [token]
        job.multibyte = pending_multibyte(job.text, job.multibyte)
        if job.multibyte > 0:
            job.multibyte -= 1
            return len(job.completion) >= job.room
        found = [stop for stop in job.stops if stop in job.text]
        if found:
            job.stopped_text = job.text[:job.text.index(found[0])]
            return True
        return len(job.completion) >= min(job.limit, job.room)

    def _finish(self, slot: Slot) -> Job:
        job = slot.job
        slot.job = None
        job.pending = []
        job.done = True
        job.sampler.close()
        if job.stopped_text is not None and job.samples < job.limit:
            job.text = job.stopped_text
        else:
            job.text = self._llm.detokenize(job.completion)
        return job

    def _fail(self, slot: Slot, message: str) -> Job:
        job = slot.job
        self._native.llama_memory_seq_rm(self._memory, slot.seq, -1, -1)
        slot.known, slot.n_past = [], 0
        job.error = TeacherCallError(message)
        return self._finish(slot)

    def close(self) -> None:
        for slot in self._slots:
            if slot.job is not None:
                slot.job.sampler.close()
        self._batch.close()
        self._ctx.close()
