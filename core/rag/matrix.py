"""Exact vector search from memory: every window vector of ``chunk_vectors`` held as two half-precision matrices.

LanceDB's exact multivector scan reads and decodes the whole vector column on
every query (~220 ms at 100k chunks on 2 busy cores). Here each float32 vector
is split into its float16 rounding ``high`` and the float16 rest ``low``
(``high + low`` equals the float32 vector to ~1e-7, in the same memory as the
float32 matrix). A query scans ``high`` only — half the bytes of a float32
scan, and the scan is memory-bound: ~1 ms at 10k chunks and 7-17 ms at 100k
on one core — then scores the ``RESCORE`` × ``limit`` best windows again with
``high + low``. Half precision moves a score by ~1e-4 at most, far less than
the gap between a result and the windows past that margin, so the results and
their scores are those of an exact float32 search.

The chunks' other columns (text, document, pages) are kept beside the vectors,
so a hit costs no read either. A matrix belongs to one version of the table:
the caller loads another when the table has another version (a row added,
changed or removed), so it is never stale.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

RESCORE = 4  # windows re-scored exactly per result asked for


@dataclass
class WindowMatrix:
    """The window vectors of one table version, chunk by chunk."""

    version: int
    high: object  # torch.Tensor (windows × dim), float16: each vector rounded to half precision
    low: np.ndarray  # (windows × dim), float16: what the rounding left out
    starts: np.ndarray | None  # first window of each chunk (None: one window per chunk)
    chunk_ids: list[str]
    doc_ids: list[str]
    columns: object  # pyarrow.Table: the ``columns`` asked for, one row per chunk
    position: dict[str, int]  # chunk id → its row

    @classmethod
    def load(cls, table, version: int, columns: list[str]) -> WindowMatrix:
        import torch

        data = table.search().select(list(dict.fromkeys([*columns, "vector"]))).limit(None).to_arrow()
        column = data.column("vector").combine_chunks()
        dim = column.type.value_type.list_size
        flat = column.flatten().flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
        with warnings.catch_warnings():  # read-only Arrow memory: only read here
            warnings.simplefilter("ignore", UserWarning)
            exact = torch.from_numpy(flat)
        high = exact.half()  # torch converts with the CPU's vector instructions; numpy's astype took 10 s at 100k
        low = (exact - high.float()).half().numpy()
        counts = np.diff(column.offsets.to_numpy())
        starts = None if (counts == 1).all() else np.concatenate(([0], np.cumsum(counts)[:-1]))
        chunk_ids = data.column("chunk_id").to_pylist()
        return cls(
            version=version, high=high, low=low, starts=starts, chunk_ids=chunk_ids,
            doc_ids=data.column("doc_id").to_pylist(), columns=data.select(columns).combine_chunks(),
            position={chunk_id: number for number, chunk_id in enumerate(chunk_ids)},
        )

    def __len__(self) -> int:
        return len(self.chunk_ids)

    def rows(self, positions: list[int]) -> list[dict]:
        """The kept columns of the chunks at ``positions``."""
        return self.columns.take(positions).to_pylist()

    def top(self, query: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk positions, cosine scores) of the ``limit`` best chunks, best first; a chunk scores by its best
        window."""
        import torch

        from doctune.core.rag.embedder import torch_single_thread

        limit = min(limit, len(self))
        if limit <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        query = np.asarray(query, dtype=np.float32)
        with torch_single_thread():  # memory-bound: a second thread gains little, and loses much on a busy machine
            scores = torch.mv(self.high, torch.from_numpy(query.astype(np.float16))).float().numpy()
        close = _best(scores, RESCORE * limit)
        scores[close] = (self.high.numpy()[close].astype(np.float32) + self.low[close]) @ query
        if self.starts is not None:
            scores = np.maximum.reduceat(scores, self.starts)
        best = _best(scores, limit)
        best = best[np.argsort(-scores[best], kind="stable")]
        return best, scores[best]


def _best(scores: np.ndarray, count: int) -> np.ndarray:
    """Positions of the ``count`` highest scores, in no order."""
    if count >= len(scores):
        return np.arange(len(scores))
    return np.argpartition(scores, len(scores) - count)[len(scores) - count:]
