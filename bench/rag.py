"""Benchmark of retrieval: index build speed and query latency, each beside its baseline.

1. Index build: ``doctune index`` (rebuild) of the chunks of synthetic
   documents (default chunk size, so most chunks are longer than the
   embedder's 256-token window and are embedded window by window), against
   ``SentenceTransformer.encode`` of the same texts the index embeds (the
   windows) with the same model and batch size. Target: at most 1.2x the raw
   encoding time.
2. Query latency at 10k and 100k chunks: ``Retriever.search`` (query
   embedding + vector and full-text search + fusion + fetch of the texts)
   against brute-force numpy cosine search (query embedding + matrix product +
   top-k + fetch) over the same vectors. Embedding 100k texts would take
   about an hour on 2 shared cores, so these tables hold synthetic texts with
   random unit vectors (said in the JSON); the query is embedded for real.

Prints a human summary, then one JSON object as the last line.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from doctune.core.events import CancelToken, Events
from doctune.core.project import Project

BUILD_DOCS = 8
BUILD_PARAGRAPHS = 8
REPEATS = 3
SIZES = (10_000, 100_000)
QUERIES = 40
K = 8
TARGET_OVERHEAD = 1.2


def vocabulary(rng: random.Random, size: int = 3000) -> list[str]:
    syllables = ["ka", "lor", "ven", "mi", "tas", "dro", "quel", "ssa", "bri", "nor", "ith", "ul", "zen", "pra", "od", "re"]
    words = {"".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(size * 2)}
    return sorted(words)[:size]


def sentence(rng: random.Random, words: list[str], length: int) -> str:
    return " ".join(rng.choice(words) for _ in range(length)).capitalize() + "."


def paragraph(rng: random.Random, words: list[str]) -> str:
    return " ".join(sentence(rng, words, rng.randint(8, 16)) for _ in range(rng.randint(4, 7)))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


# ----- 1. index build -------------------------------------------------------------------------------

def build_benchmark(root: Path, rng: random.Random, words: list[str]) -> dict:
    from doctune.core.ingest import IngestParams
    from doctune.core.ingest import run as ingest
    from doctune.core.rag import IndexParams
    from doctune.core.rag import run as index
    from doctune.core.rag.embedder import load_embedder
    from doctune.core.store import list_chunks

    project = Project.create(root / "build")
    docs = root / "build-docs"
    docs.mkdir()
    for number in range(BUILD_DOCS):
        body = "\n\n".join(paragraph(rng, words) for _ in range(BUILD_PARAGRAPHS))
        (docs / f"doc{number:02d}.md").write_text(f"# Document {number}\n\n{body}\n", encoding="utf-8")
    ingest(IngestParams(project_dir=project.root, paths=[docs]), events=Events(), cancel=CancelToken())
    chunks = [chunk["text"] for chunk in list_chunks(project)]
    embedder = load_embedder(project.config.rag.embedder)
    texts = [window for windows in embedder.windows(chunks) for window in windows]
    batch = project.config.rag.embed_batch
    embedder.encode(texts[:batch], batch_size=batch)  # warm up
    raw_times, index_times = [], []
    for _ in range(REPEATS):
        started = time.perf_counter()
        embedder.model.encode(texts, batch_size=batch, normalize_embeddings=True, convert_to_numpy=True,
                              show_progress_bar=False)
        raw_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        result = index(IndexParams(project_dir=project.root, rebuild=True), events=Events(), cancel=CancelToken())
        index_times.append(time.perf_counter() - started)
        assert result.embedded == len(chunks)
    raw, built = min(raw_times), min(index_times)
    return {
        "chunks": len(chunks), "embedded_texts": len(texts), "raw_encode_s": round(raw, 3), "index_s": round(built, 3),
        "raw_chunks_per_s": round(len(chunks) / raw, 2), "index_chunks_per_s": round(len(chunks) / built, 2),
        "overhead_ratio": round(built / raw, 3), "target_ratio": TARGET_OVERHEAD,
        "baseline": "SentenceTransformer.encode of the same texts the index embeds: each chunk, or its windows "
                    f"when it is longer than the embedder's {embedder.window_tokens}-token input",
    }


# ----- 2. query latency -------------------------------------------------------------------------------

def fill_project(root: Path, n: int, rng: random.Random, words: list[str], embedder) -> tuple:
    """A project whose search table holds ``n`` synthetic chunks, each with one random unit vector (they are
    shorter than the embedder's window)."""
    import pyarrow as pa

    from doctune.core.rag.index import TABLE, refresh_fts, refresh_vector_index, table_schema, text_sha
    from doctune.core.store import Store

    project = Project.create(root / f"latency-{n}")
    store = Store(project)
    n_docs = max(1, n // 100)
    doc_ids = [hashlib.sha256(f"bench document {number}".encode()).hexdigest() for number in range(n_docs)]
    store.add_documents([{"id": doc_id, "path": f"/bench/doc{i}.md", "name": f"doc{i}.md", "status": "ok", "chunks": 100}
                         for i, doc_id in enumerate(doc_ids)])
    vectors = np.random.default_rng(0).standard_normal((n, embedder.dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = [" ".join(sentence(rng, words, rng.randint(8, 14)) for _ in range(4)) for _ in range(n)]
    ids = [f"{doc_ids[i // 100][:16]}-{i % 100:05d}" for i in range(n)]
    table = store.db.create_table(TABLE, schema=table_schema(embedder.dim))
    for start in range(0, n, 20_000):
        stop = min(n, start + 20_000)
        rows = [{"chunk_id": ids[i], "doc_id": doc_ids[i // 100], "doc_path": f"/bench/doc{i // 100}.md",
                 "doc_title": f"doc{i // 100}", "ordinal": i % 100, "page_start": None, "page_end": None,
                 "text": texts[i], "text_sha": text_sha(texts[i]), "embedder": embedder.identity,
                 "vector": [vectors[i]]} for i in range(start, stop)]
        table.add(pa.Table.from_pylist(rows, schema=table_schema(embedder.dim)))
    refresh_fts(table)
    started = time.perf_counter()
    ann = refresh_vector_index(table, project.config.rag.ann_min_rows)
    return project, vectors, texts, ids, ann, time.perf_counter() - started


def latency_benchmark(root: Path, n: int, rng: random.Random, words: list[str], embedder) -> dict:
    from doctune.core.rag import Retriever

    started = time.perf_counter()
    project, vectors, texts, ids, ann, ann_build_s = fill_project(root, n, rng, words, embedder)
    setup_s = time.perf_counter() - started
    retriever = Retriever(project)
    queries = [" ".join(rng.choice(words) for _ in range(6)) for _ in range(QUERIES)]
    retriever.search(queries[0], k=K)  # warm up
    ours, baseline, overlap = [], [], []
    for query in queries:
        started = time.perf_counter()
        hits = retriever.search(query, k=K)
        ours.append(time.perf_counter() - started)
        assert len(hits) == K and all(hit.text for hit in hits)
        started = time.perf_counter()
        vector = embedder.encode_query(query)
        scores = vectors @ vector
        top = np.argpartition(-scores, K)[:K]
        top = top[np.argsort(-scores[top])]
        exact = [(ids[i], texts[i]) for i in top]
        baseline.append(time.perf_counter() - started)
        approximate = {row["chunk_id"] for row in retriever.vector_rows(query, K)}
        overlap.append(len(approximate & {chunk_id for chunk_id, _ in exact}) / K)
    p50, p95 = statistics.median(ours), percentile(ours, 0.95)
    b50, b95 = statistics.median(baseline), percentile(baseline, 0.95)
    return {
        "chunks": n, "p50_ms": round(p50 * 1000, 2), "p95_ms": round(p95 * 1000, 2),
        "baseline_p50_ms": round(b50 * 1000, 2), "baseline_p95_ms": round(b95 * 1000, 2),
        "ratio_p50": round(p50 / b50, 2), "ratio_p95": round(p95 / b95, 2),
        "vector_index": "hnsw_sq" if ann else "exact scan", "vector_index_build_s": round(ann_build_s, 1) if ann else 0,
        "vector_recall_at_8_vs_exact": round(statistics.mean(overlap), 3), "setup_s": round(setup_s, 1),
    }


def main() -> dict:
    from doctune.core.rag.embedder import BUNDLED, load_embedder

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rng = random.Random(0)
    words = vocabulary(rng)
    with tempfile.TemporaryDirectory(prefix="doctune-bench-rag-") as folder:
        root = Path(folder)
        build = build_benchmark(root, rng, words)
        print(f"index build: {build['index_chunks_per_s']} chunks/s vs raw encode {build['raw_chunks_per_s']} "
              f"(x{build['overhead_ratio']}, target <= {TARGET_OVERHEAD})")
        embedder = load_embedder(BUNDLED)
        latency = {}
        for n in SIZES:
            latency[str(n)] = figures = latency_benchmark(root, n, rng, words, embedder)
            print(f"{n} chunks: search p50 {figures['p50_ms']} ms p95 {figures['p95_ms']} ms; numpy brute force "
                  f"p50 {figures['baseline_p50_ms']} ms p95 {figures['baseline_p95_ms']} ms ({figures['vector_index']})")
    return {
        "bench": "rag", "index_build": build, "query_latency": latency, "queries": QUERIES, "k": K,
        "latency_vectors": "random unit vectors with synthetic texts (embedding 100k texts takes too long here); "
                           "queries embedded for real with the bundled embedder",
        "cpu_count": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
    }


if __name__ == "__main__":
    print(json.dumps(main()))
