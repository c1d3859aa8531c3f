"""Retrieval quality on the bundled fictional corpus, fusion, and reranking."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from doctune.core.rag import Retriever, rrf_fuse
from doctune.core.resources import resource_path


def _questions() -> list[dict]:
    lines = resource_path("sample/questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def recall_at(retriever: Retriever, k: int, mode: str) -> float:
    """Share of questions with a retrieved chunk of the right document that contains the evidence."""
    questions = _questions()
    found = 0
    for question in questions:
        hits = retriever.search(question["question"], k=k, mode=mode)
        found += any(Path(hit.doc_path).name == question["doc"] and question["evidence"] in hit.text for hit in hits)
    return found / len(questions)


def test_bundled_questions_are_answerable_from_the_corpus():
    docs = resource_path("sample/docs")
    for question in _questions():
        assert question["evidence"] in (docs / question["doc"]).read_text(encoding="utf-8"), question["id"]


def test_hybrid_recall_at_8_and_not_worse_than_vector(sample_project):
    from doctune.core.store import list_chunks

    assert len(list_chunks(sample_project)) >= 60  # small chunks: k=8 is at most an eighth of the corpus
    retriever = Retriever(sample_project)
    hybrid, vector = recall_at(retriever, 8, "hybrid"), recall_at(retriever, 8, "vector")
    assert hybrid >= 0.9
    assert hybrid >= vector
    assert recall_at(retriever, 3, "hybrid") >= recall_at(retriever, 3, "vector")


def test_hits_are_ranked_with_their_documents(sample_project):
    hits = Retriever(sample_project).search("Who first charted the Vellmora Archipelago?", k=5)
    assert len(hits) == 5 and [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert Path(hits[0].doc_path).name == "01-vellmora-archipelago.md" and hits[0].doc_title
    assert all(hit.page_start is None for hit in hits)  # markdown has no pages
    assert Retriever(sample_project).search("   ", k=5) == []


def test_rrf_prefers_what_both_lists_find():
    fused = rrf_fuse([["a", "b", "c"], ["c", "d", "a"]], rrf_k=60)
    assert max(fused, key=fused.get) == "a"
    assert fused["c"] > fused["b"] and fused["c"] > fused["d"]
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 63)


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory):
    """A randomly initialised BERT cross-encoder with the bundled embedder's tokenizer (no download)."""
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from doctune.core.rag.embedder import bundled_model_dir

    folder = tmp_path_factory.mktemp("cross-encoder")
    tokenizer = AutoTokenizer.from_pretrained(str(bundled_model_dir()))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, CrossEncoder(str(folder))


def test_reranker_reorders_the_fused_candidates(sample_project, tiny_cross_encoder):
    folder, model = tiny_cross_encoder
    query = "What bird appears on the flag?"
    fused = Retriever(sample_project, reranker="").search(query, k=24)
    reranked = Retriever(sample_project, reranker=str(folder)).search(query, k=8)
    assert {hit.chunk_id for hit in reranked} <= {hit.chunk_id for hit in fused}
    expected = model.predict([(query, hit.text) for hit in fused])
    best = sorted(zip(expected, (hit.chunk_id for hit in fused)), key=lambda pair: -float(pair[0]))[:8]
    assert [hit.chunk_id for hit in reranked] == [chunk_id for _, chunk_id in best]
    assert [hit.score for hit in reranked] == pytest.approx([float(score) for score, _ in best], abs=1e-5)


def test_query_longer_than_the_embedder_window_still_searches(sample_project):
    query = "Which bird is on the flag of the Vellmora Archipelago? " + "Please answer precisely. " * 600
    hits = Retriever(sample_project).search(query, k=3)
    assert len(hits) == 3 and all(hit.text for hit in hits)
