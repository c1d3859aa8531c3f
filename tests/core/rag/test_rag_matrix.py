"""The in-memory matrix's coarse pass (from ``COARSE_ROWS`` windows) finds what an exact scan finds."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from doctune.core.rag import matrix
from doctune.core.rag.matrix import WindowMatrix

DIM = 384
COLUMNS = ["chunk_id", "doc_id"]


def embedding_like(count: int, generator: np.random.Generator) -> np.ndarray:
    """Unit vectors whose variance falls off over the dimensions, as a sentence embedder's does, in clusters."""
    spread = (1.0 + np.arange(DIM)) ** -0.4
    centres = generator.standard_normal((count // 50 + 1, DIM)) * spread
    vectors = centres[np.arange(count) // 50] + 0.5 * generator.standard_normal((count, DIM)) * spread
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def matrix_of(windows: np.ndarray, windows_per_chunk: list[int]) -> WindowMatrix:
    bounds = np.concatenate(([0], np.cumsum(windows_per_chunk))).astype(np.int32)
    vectors = pa.ListArray.from_arrays(pa.array(bounds), pa.FixedSizeListArray.from_arrays(
        pa.array(windows.reshape(-1)), DIM))
    ids = [f"c{number}" for number in range(len(windows_per_chunk))]
    data = pa.table({"chunk_id": ids, "doc_id": ids, "vector": vectors})
    return WindowMatrix.from_arrow(data, version=1, columns=COLUMNS)


def exact_chunks(windows: np.ndarray, windows_per_chunk: list[int], query: np.ndarray, limit: int) -> list[int]:
    scores = np.maximum.reduceat(windows @ query, np.concatenate(([0], np.cumsum(windows_per_chunk)[:-1])))
    return list(np.argsort(-scores, kind="stable")[:limit])


@pytest.fixture(scope="module")
def corpus():
    generator = np.random.default_rng(7)
    windows = embedding_like(60_000, generator)
    queries = embedding_like(1_000, generator)[::50]
    return windows, queries


def test_the_coarse_pass_finds_the_exact_best_chunks_and_scores(corpus):
    windows, queries = corpus
    assert len(windows) >= matrix.COARSE_ROWS
    found = matrix_of(windows, [1] * len(windows))
    assert found.coarse is not None and found.coarse.shape == (len(windows), matrix.COARSE_DIMS)
    for query in queries:
        chunks, scores = found.top(query, 50)
        assert set(chunks) == set(exact_chunks(windows, [1] * len(windows), query, 50))
        assert scores == pytest.approx(windows[chunks] @ query, abs=1e-5)
        assert list(scores) == sorted(scores, reverse=True)


def test_chunks_of_several_windows_score_by_their_best_one(corpus):
    windows, queries = corpus
    per_chunk = [1 + number % 3 for number in range(len(windows))]
    per_chunk = per_chunk[: int(np.searchsorted(np.cumsum(per_chunk), len(windows), side="right"))]
    windows = windows[: sum(per_chunk)]
    found = matrix_of(windows, per_chunk)
    assert found.coarse is not None
    for query in queries[:8]:
        assert set(found.top(query, 20)[0]) == set(exact_chunks(windows, per_chunk, query, 20))


def test_a_chunk_with_many_windows_near_the_query_does_not_crowd_out_the_others(corpus):
    windows, queries = corpus
    query = queries[0]
    crowd = query + 0.01 * np.random.default_rng(1).standard_normal((2_000, DIM)).astype(np.float32)
    crowd /= np.linalg.norm(crowd, axis=1, keepdims=True)
    all_windows = np.concatenate([crowd, windows])
    per_chunk = [len(crowd)] + [1] * len(windows)
    found = matrix_of(all_windows, per_chunk)
    chunks, _ = found.top(query, 10)  # the first 10 x COARSE_RESCORE windows all belong to chunk 0
    assert set(chunks) == set(exact_chunks(all_windows, per_chunk, query, 10))
    assert chunks[0] == 0 and len(set(chunks)) == 10


def test_fewer_windows_are_scanned_whole_without_a_coarse_pass(corpus):
    windows, queries = corpus
    found = matrix_of(windows[:5_000], [1] * 5_000)
    assert found.coarse is None
    assert set(found.top(queries[0], 10)[0]) == set(exact_chunks(windows[:5_000], [1] * 5_000, queries[0], 10))
