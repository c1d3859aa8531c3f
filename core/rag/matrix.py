"""Vector search from memory, exact up to ``COARSE_ROWS`` windows: every window vector of ``chunk_vectors`` held as two half-precision matrices.

LanceDB's exact multivector scan reads and decodes the whole vector column on
every query (~220 ms at 100k chunks on 2 busy cores). Here each float32 vector
is split into its half-precision rounding ``high`` and the float16 rest
``low`` (``high + low`` equals the float32 vector to ~1e-7, in the same memory
as the float32 matrix). A query scans ``high`` only — half the bytes of a
float32 scan — then scores the ``RESCORE`` × ``limit`` best windows again with
``high + low``. Rounding moves a score by ~4e-3 at most (bfloat16; float16
~5e-4), less than the gap between a result and the windows past that margin,
so the results and their scores are those of an exact float32 search.

The half type of ``high`` is the one this processor multiplies fastest
(:func:`fastest_half`): on an AVX-512/AMX Xeon torch's bfloat16
matrix-vector product at 100k x 384 takes 4.0 ms on one core, float16 14.4 ms;
processors without bfloat16 instructions may favour float16. From
``SPLIT_ROWS`` windows the scan runs in two halves on two threads, each
single-threaded (torch's own thread pool lost more than it gained: its idle
threads spin against the query's other work).

From ``COARSE_ROWS`` windows even that scan is most of a query's vector time
(3.7 ms of 5 at 100k, right after the query's embedding has pushed the
matrix out of the caches). There a first pass scores every window on the
``COARSE_DIMS`` principal axes of the vectors (a third of the bytes), and the
``COARSE_RESCORE`` × ``limit`` best windows of that pass are scored from
``high``, and their ``RESCORE`` × ``limit`` best exactly.
That pass is approximate, and the axes are what make it safe: sentence
embeddings vary along few directions (MiniLM's 128 main axes hold 92% of the
vectors' energy on 1,128 sentences of prose). On the bench's synthetic 100k
chunks (68% on 128 axes) the exact top 50 were all among the pass's 2,000
best on 80 queries; a test holds it on vectors with 81%.

The chunks' other columns (text, document, pages) are kept beside the vectors,
so a hit costs no read either. A matrix belongs to one version of the table:
the caller loads another when the table has another version (a row added,
changed or removed), so it is never stale.
"""
from __future__ import annotations

import functools
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pyarrow
    import torch

RESCORE = 4  # windows re-scored exactly per result asked for
COARSE_ROWS = 50_000  # from here a first pass on principal axes picks the windows to score
COARSE_DIMS = 128  # principal axes of that pass (of 384 for MiniLM)
COARSE_RESCORE = 40  # windows it passes on to be scored exactly, per result asked for
AXES_SAMPLE = 20_000  # windows the principal axes are computed from
SPLIT_ROWS = 20_000  # from here the scan runs on two threads
PROBE_ROWS, PROBE_REPEATS = 8192, 5  # the probe of the faster half type: ~3 MB per product, ~10 ms in all


@dataclass
class WindowMatrix:
    """The window vectors of one table version, chunk by chunk."""

    version: int
    high: torch.Tensor  # (windows × dim), float16 or bfloat16: each vector rounded to half precision
    low: torch.Tensor  # (windows × dim), float16: what the rounding left out
    axes: torch.Tensor | None  # (dim × COARSE_DIMS) float32 principal axes (None: no coarse pass, fewer windows)
    coarse: torch.Tensor | None  # (windows × COARSE_DIMS), the half type of ``high``: the vectors on ``axes``
    starts: np.ndarray | None  # first window of each chunk (None: one window per chunk)
    chunk_ids: list[str]
    doc_ids: list[str]
    columns: pyarrow.Table  # the ``columns`` asked for, one row per chunk
    position: dict[str, int]  # chunk id → its row

    @classmethod
    def load(cls, table, version: int, columns: list[str]) -> WindowMatrix:
        data = table.search().select(list(dict.fromkeys([*columns, "vector"]))).limit(None).to_arrow()
        return cls.from_arrow(data, version, columns)

    @classmethod
    def from_arrow(cls, data: pyarrow.Table, version: int, columns: list[str]) -> WindowMatrix:
        """The matrix of ``data``: rows of ``chunk_vectors`` with ``columns``, ``doc_id`` and ``vector``."""
        import torch

        column = data.column("vector").combine_chunks()
        dim = column.type.value_type.list_size
        flat = column.flatten().flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
        with warnings.catch_warnings():  # read-only Arrow memory: only read here
            warnings.simplefilter("ignore", UserWarning)
            exact = torch.from_numpy(flat)
        high = exact.to(fastest_half())  # torch converts with vector instructions; numpy's astype took 10 s at 100k
        low = (exact - high.float()).half()
        axes = principal_axes(exact, COARSE_DIMS) if len(exact) >= COARSE_ROWS else None
        coarse = (exact @ axes).to(high.dtype) if axes is not None else None
        counts = np.diff(column.offsets.to_numpy())
        starts = None if (counts == 1).all() else np.concatenate(([0], np.cumsum(counts)[:-1]))
        chunk_ids = data.column("chunk_id").to_pylist()
        return cls(
            version=version, high=high, low=low, axes=axes, coarse=coarse, starts=starts, chunk_ids=chunk_ids,
            doc_ids=data.column("doc_id").to_pylist(), columns=data.select(columns).combine_chunks(),
            position={chunk_id: number for number, chunk_id in enumerate(chunk_ids)},
        )

    def __len__(self) -> int:
        return len(self.chunk_ids)

    def rows(self, positions: list[int]) -> list[dict]:
        """The kept columns of the chunks at ``positions``."""
        return self.columns.take(positions).to_pylist()

    def _scan(self, matrix: torch.Tensor, query: torch.Tensor) -> np.ndarray:
        """``matrix`` times ``query``, as float32 scores: the two halves of a large matrix on two threads."""
        import torch

        if len(matrix) < SPLIT_ROWS:
            return torch.mv(matrix, query).float().numpy()
        middle = len(matrix) // 2
        first = _scan_thread().submit(torch.mv, matrix[:middle], query)
        second = torch.mv(matrix[middle:], query)
        return torch.cat([first.result(), second]).float().numpy()

    def top(self, query: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk positions, cosine scores) of the ``limit`` best chunks, best first; a chunk scores by its best
        window."""
        import torch

        from doctune.core.rag.embedder import torch_single_thread

        limit = min(limit, len(self))
        if limit <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        exact_query = torch.from_numpy(np.asarray(query, dtype=np.float32))
        with torch_single_thread():  # torch's threads on the small products cost 10x the work (0.5 vs 0.05 ms)
            half_query = exact_query.to(self.high.dtype)
            if self.coarse is not None and self.axes is not None:
                coarse, count = True, COARSE_RESCORE
                rough = self._scan(self.coarse, (exact_query @ self.axes).to(self.coarse.dtype))
            else:
                coarse, count = False, RESCORE
                rough = self._scan(self.high, half_query)
            count *= limit
            while True:  # more windows when those passed on belong to fewer than ``limit`` chunks
                close = _best(rough, count)
                if coarse:  # ``high`` first: the exact scores read twice the bytes per window
                    close = close[_best(self._half(close, half_query), count * RESCORE // COARSE_RESCORE)]
                chunks, scores = self._best_chunks(close, self._exact(close, exact_query), limit)
                if len(chunks) == limit or count >= len(rough):
                    return chunks, scores
                count *= 2

    def _half(self, windows: np.ndarray, query: torch.Tensor) -> np.ndarray:
        """Scores of ``windows`` from ``high`` (within ~4e-3 of the exact ones)."""
        import torch

        return torch.mv(self.high.index_select(0, torch.from_numpy(windows)), query).float().numpy()

    def _exact(self, windows: np.ndarray, query: torch.Tensor) -> np.ndarray:
        """Float32 scores of ``windows`` (``high + low``)."""
        import torch

        rows = torch.from_numpy(windows)
        return ((self.high.index_select(0, rows).float() + self.low.index_select(0, rows).float()) @ query).numpy()

    def _best_chunks(self, windows: np.ndarray, scores: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk positions, scores) of the ``limit`` best chunks that ``windows`` belong to, each scored by its best
        window among them, best first."""
        order = np.argsort(-scores, kind="stable")
        if self.starts is None:  # one window per chunk
            best = order[:limit]
            return windows[best], scores[best]
        chunks = np.searchsorted(self.starts, windows[order], side="right") - 1
        _, first = np.unique(chunks, return_index=True)  # each chunk's best window, in ``order``
        best = np.sort(first)[:limit]
        return chunks[best], scores[order][best]


@functools.lru_cache(maxsize=1)
def fastest_half() -> torch.dtype:
    """float16 or bfloat16: whichever torch multiplies a matrix by a vector faster on this processor (measured
    once, on one thread, in a few milliseconds)."""
    import torch

    from doctune.core.rag.embedder import torch_single_thread

    probe = torch.randn(PROBE_ROWS, 384)
    timings: dict[torch.dtype, float] = {}
    with torch_single_thread():
        for dtype in (torch.bfloat16, torch.float16):
            matrix, vector = probe.to(dtype), probe[0].to(dtype)
            torch.mv(matrix, vector)  # the first call pays for dispatch and allocation
            started = time.perf_counter()
            for _ in range(PROBE_REPEATS):
                torch.mv(matrix, vector)
            timings[dtype] = time.perf_counter() - started
    return min(timings, key=lambda dtype: timings[dtype])


@functools.lru_cache(maxsize=1)
def _scan_thread():
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(1, thread_name_prefix="doctune-scan")


def principal_axes(vectors: torch.Tensor, count: int) -> torch.Tensor:
    """(dim × count) float32: the ``count`` directions along which ``vectors`` (a sample of ``AXES_SAMPLE`` of
    them) vary most, as columns."""
    import torch

    step = max(1, len(vectors) // AXES_SAMPLE)
    sample = vectors[::step].double()
    _, eigenvectors = torch.linalg.eigh(sample.T @ sample)  # ascending eigenvalues
    return eigenvectors[:, -count:].flip(1).float().contiguous()


def _best(scores: np.ndarray, count: int) -> np.ndarray:
    """Positions of the ``count`` highest scores, in no order."""
    if count >= len(scores):
        return np.arange(len(scores))
    return np.argpartition(scores, len(scores) - count)[len(scores) - count:]
