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
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from doctune.core.events import CancelToken, Events
from doctune.core.project import Project

BUILD_DOCS = 8
BUILD_PARAGRAPHS = 8
REPEATS = 3
SIZES = (10_000, 100_000, 1_000_000)
CACHE_VERSION = 2
TOPICS = 2000
CHUNKS_PER_DOC = 100
DOC_NOISE = 0.8
CHUNK_NOISE = 0.6
QUERIES = 40
K = 8
RECALL_K = 10
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

def cache_root() -> Path:
    """Where generated latency tables are kept between runs (a 1M-row table takes minutes to write)."""
    base = os.environ.get("DOCTUNE_BENCH_CACHE") or str(Path(tempfile.gettempdir()) / "doctune-bench-rag-cache")
    return Path(base) / f"v{CACHE_VERSION}"


def topic_vectors(root: Path, embedder, words: list[str]) -> np.ndarray:
    """Real embeddings of ``TOPICS`` synthetic sentences (embedded once, then read from the cache)."""
    path = root / "topics.npy"
    if not path.is_file():
        rng = random.Random(1)
        root.mkdir(parents=True, exist_ok=True)
        np.save(path, embedder.encode([sentence(rng, words, rng.randint(6, 12)) for _ in range(TOPICS)], batch_size=64))
    return np.load(path)


def synthetic_vectors(n: int, topics: np.ndarray) -> np.ndarray:
    """``n`` unit vectors shaped like the embeddings of a real corpus: each document (``CHUNKS_PER_DOC`` chunks in
    a row) is one of ``TOPICS`` real sentence embeddings plus Gaussian noise, and each chunk its document's vector
    plus smaller noise — cosine ~0.86 to its document, ~0.75 between chunks of one document, ~0.6 between
    documents of one topic. (Independent random vectors have no neighbourhood at all: no approximate index can
    beat a scan on them, and no embedder makes them.)"""
    generator = np.random.default_rng(0)
    dim = topics.shape[1]
    vectors = np.empty((n, dim), dtype=np.float32)
    n_docs = -(-n // CHUNKS_PER_DOC)
    docs = topics[generator.integers(0, TOPICS, n_docs)]
    docs += generator.standard_normal(docs.shape, dtype=np.float32) * np.float32(DOC_NOISE / np.sqrt(dim))
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        block = docs[np.arange(start, stop) // CHUNKS_PER_DOC]
        block += generator.standard_normal(block.shape, dtype=np.float32) * np.float32(CHUNK_NOISE / np.sqrt(dim))
        vectors[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return vectors


def fill_project(root: Path, n: int, words: list[str], embedder) -> tuple:
    """A project whose search table holds ``n`` synthetic chunks, each with one synthetic vector (they are shorter
    than the embedder's window); kept in ``root`` and reused by later runs."""
    import pyarrow as pa

    from doctune.core.rag.index import TABLE, refresh_fts, table_schema, text_sha
    from doctune.core.store import Store

    folder = root / f"latency-{n}"
    ready = folder / "bench-ready.json"
    if ready.is_file():
        project = Project.open(folder / "project")
        data = pa.ipc.open_file(str(folder / "texts.arrow")).read_all()
        return project, np.load(folder / "vectors.npy", mmap_mode="r"), data.column("text").to_pylist(), \
            data.column("chunk_id").to_pylist(), json.loads(ready.read_text())
    started = time.perf_counter()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    rng = random.Random(n)
    project = Project.create(folder / "project")
    store = Store(project)
    n_docs = max(1, n // CHUNKS_PER_DOC)
    doc_ids = [hashlib.sha256(f"bench document {number}".encode()).hexdigest() for number in range(n_docs)]
    store.add_documents([{"id": doc_id, "path": f"/bench/doc{i}.md", "name": f"doc{i}.md", "status": "ok", "chunks": 100}
                         for i, doc_id in enumerate(doc_ids)])
    vectors = synthetic_vectors(n, topic_vectors(root, embedder, words))
    texts = [" ".join(sentence(rng, words, rng.randint(8, 14)) for _ in range(4)) for _ in range(n)]
    ids = [f"{doc_ids[i // 100][:16]}-{i % 100:05d}" for i in range(n)]
    schema = table_schema(embedder.dim)
    table = store.db.create_table(TABLE, schema=schema)
    for start in range(0, n, 50_000):
        stop = min(n, start + 50_000)
        rows = [{"chunk_id": ids[i], "doc_id": doc_ids[i // 100], "doc_path": f"/bench/doc{i // 100}.md",
                 "doc_title": f"doc{i // 100}", "ordinal": i % 100, "page_start": None, "page_end": None,
                 "text": texts[i], "text_sha": text_sha(texts[i]), "embedder": embedder.identity,
                 "vector": [vectors[i]]} for i in range(start, stop)]
        table.add(pa.Table.from_pylist(rows, schema=schema))
    refresh_fts(table)
    np.save(folder / "vectors.npy", vectors)
    with pa.ipc.new_file(str(folder / "texts.arrow"), pa.schema([("chunk_id", pa.string()), ("text", pa.string())])) as out:
        out.write_table(pa.table({"chunk_id": ids, "text": texts}))
    info = {"setup_s": round(time.perf_counter() - started, 1)}
    ready.write_text(json.dumps(info))
    return project, vectors, texts, ids, info


def vector_index(folder: Path, project: Project, n: int, events: Events) -> tuple[bool, float | None]:
    """Build the approximate index as ``doctune index`` does when the project's ``rag.ann_min_rows`` asks for it
    (kept with the cached table); (whether the table has one, the seconds its build took)."""
    from doctune.core.config import RagSettings
    from doctune.core.rag.index import TABLE, has_vector_index, refresh_vector_index
    from doctune.core.store import connect

    project.config.rag.ann_min_rows = RagSettings().ann_min_rows  # the default is what is measured
    project.save()
    table = connect(project).open_table(TABLE)
    record = folder / "vector-index.json"
    started = time.perf_counter()
    if refresh_vector_index(table, project.config.rag.ann_min_rows, events, CancelToken()):
        record.write_text(json.dumps({"build_s": round(time.perf_counter() - started, 1)}))
    built = has_vector_index(table) and 0 < project.config.rag.ann_min_rows <= n
    return built, json.loads(record.read_text())["build_s"] if built and record.is_file() else None


def brute_force(vectors: np.ndarray, ids: list[str], texts: list[str], query: np.ndarray) -> list[tuple[str, str]]:
    """The baseline: the ``K`` chunks nearest to ``query`` by a numpy matrix product over all vectors, with texts."""
    scores = vectors @ query
    top = np.argpartition(-scores, K)[:K]
    top = top[np.argsort(-scores[top])]
    return [(ids[i], texts[i]) for i in top]


def latency_benchmark(root: Path, n: int, rng: random.Random, words: list[str], embedder) -> dict:
    from doctune.core.rag import Retriever, rrf_fuse

    started = time.perf_counter()
    project, stored, texts, ids, info = fill_project(root, n, words, embedder)
    vectors = np.array(stored)  # in memory, as the brute force needs
    ann, ann_build_s = vector_index(root / f"latency-{n}", project, n, Events(_progress_line))
    setup_s = time.perf_counter() - started
    retriever = Retriever(project)
    settings = project.config.rag
    queries = [" ".join(rng.choice(words) for _ in range(6)) for _ in range(QUERIES)]
    retriever.search(queries[0], k=K)  # warm up (loads the vectors into memory when there is no index)
    retriever.embedder.prepare_queries(wait=True)  # the traced query graph, as in a process that has run a while
    brute_force(vectors, ids, texts, embedder.encode_query(queries[0]))
    # Each side's queries run back to back: numpy's BLAS threads spin for ~0.1 s of CPU after each product, and in
    # a loop that alternated the two they took a core from the search that followed (+9 ms at 100k, measured).
    ours = []
    for query in queries:
        started = time.perf_counter()
        hits = retriever.search(query, k=K)
        ours.append(time.perf_counter() - started)
        assert len(hits) == K and all(hit.text for hit in hits)
    baseline = []
    for query in queries:
        started = time.perf_counter()
        exact = brute_force(vectors, ids, texts, embedder.encode_query(query))
        baseline.append(time.perf_counter() - started)
        assert len(exact) == K
    fused_recall, vector_recall = [], []
    for query in queries:
        hits = retriever.search(query, k=K)
        scores = vectors @ embedder.encode_query(query)
        # today's exact hybrid ranking: exact vector candidates and full-text candidates, fused
        pool = np.argsort(-scores)[: settings.candidates]
        text = [row["chunk_id"] for row in retriever.text_rows(query, settings.candidates)]
        fused = rrf_fuse([[ids[i] for i in pool], text], settings.rrf_k)
        reference = sorted(fused, key=fused.get, reverse=True)[:K]
        fused_recall.append(len({hit.chunk_id for hit in hits} & set(reference)) / K)
        found = {row["chunk_id"] for row in retriever.vector_rows(query, RECALL_K)}
        vector_recall.append(len(found & {ids[i] for i in pool[:RECALL_K]}) / RECALL_K)
    p50, p95 = statistics.median(ours), percentile(ours, 0.95)
    b50, b95 = statistics.median(baseline), percentile(baseline, 0.95)
    figures = {
        "chunks": n, "p50_ms": round(p50 * 1000, 2), "p95_ms": round(p95 * 1000, 2),
        "baseline_p50_ms": round(b50 * 1000, 2), "baseline_p95_ms": round(b95 * 1000, 2),
        "ratio_p50": round(p50 / b50, 2), "ratio_p95": round(p95 / b95, 2),
        "vector_search": "approximate index (IVF-SQ, LanceDB)" if ann else "exact scan (in memory)",
        "fused_recall_at_k_vs_exact_hybrid": round(statistics.mean(fused_recall), 4),
        "vector_recall_at_10_vs_exact": round(statistics.mean(vector_recall), 4),
        "setup_s": round(setup_s, 1), "table_written_s": info["setup_s"],
    }
    if ann:
        figures["recall_at_10"] = figures["vector_recall_at_10_vs_exact"]
        figures["vector_index_build_s"] = ann_build_s
    return figures


def _progress_line(event: dict) -> None:
    if event["event"] == "progress" and event.get("stage") == "index.vectors":
        print(f"  vector index: {event['done']} / {event['total']} s", file=sys.stderr, flush=True)


def print_table(title: str, rows: list[dict], columns: list[tuple[str, str]]) -> None:
    print(title)
    print("| " + " | ".join(name for name, _ in columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row.get(key, "")) for _, key in columns) + " |")


def main() -> dict:
    from doctune.core.rag.embedder import BUNDLED, load_embedder

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rng = random.Random(0)
    words = vocabulary(rng)
    with tempfile.TemporaryDirectory(prefix="doctune-bench-rag-") as folder:
        build = build_benchmark(Path(folder), rng, words)
    print(f"index build: {build['index_chunks_per_s']} chunks/s vs raw encode {build['raw_chunks_per_s']} "
          f"(x{build['overhead_ratio']}, target <= {TARGET_OVERHEAD})")
    embedder = load_embedder(BUNDLED)
    latency = {str(n): latency_benchmark(cache_root(), n, rng, words, embedder) for n in SIZES}
    rows = list(latency.values())
    print_table("\nQuery latency, hybrid search vs numpy brute force (same run):", rows, [
        ("Chunks", "chunks"), ("search p50 ms", "p50_ms"), ("search p95 ms", "p95_ms"),
        ("brute force p50 ms", "baseline_p50_ms"), ("brute force p95 ms", "baseline_p95_ms"),
        ("ratio p50", "ratio_p50"), ("vector search", "vector_search")])
    print_table("\nSame results (recall against exact search, same queries):", rows, [
        ("Chunks", "chunks"), ("fused top-k vs exact hybrid", "fused_recall_at_k_vs_exact_hybrid"),
        ("vector recall@10 vs exact", "vector_recall_at_10_vs_exact"), ("index build s", "vector_index_build_s")])
    return {
        "bench": "rag", "index_build": build, "query_latency": latency, "queries": QUERIES, "k": K,
        "latency_vectors": f"synthetic (embedding 1M texts takes hours here): documents are real embeddings of "
                           f"{TOPICS} synthetic sentences plus noise, chunks their document's vector plus noise (see "
                           "synthetic_vectors); synthetic texts; queries embedded for real with the bundled embedder",
        "ann_min_rows": _default_ann_min_rows(), "cache": str(cache_root()),
        "cpu_count": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def _default_ann_min_rows() -> int:
    from doctune.core.config import RagSettings

    return RagSettings().ann_min_rows


if __name__ == "__main__":
    print(json.dumps(main()))
