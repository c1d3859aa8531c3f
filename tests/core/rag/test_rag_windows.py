"""Chunks longer than the embedder's input are embedded window by window: vector search finds any part of them."""
from __future__ import annotations

import pytest
from project_helpers import ingest
from rag_helpers import index, write_docs

from doctune.core.rag import IndexStale, Retriever
from doctune.core.rag.embedder import BUNDLED, load_embedder
from doctune.core.store import list_chunks

STATIONS = ["Orlen", "Besk", "Marrow Quay", "Tilde Point", "Vasco Rock", "Hollin"]
SUBJECTS = ["navigation", "botany", "masonry", "tide tables", "rope making", "dialect poetry", "clock repair"]
PARTS = ["the upper millstone", "the sack hoist", "the bolting reel", "the crown wheel", "the sluice gate"]
WINDS = ["north", "north-east", "east", "south", "south-west", "west"]
VOICES = [("Alda", "soprano"), ("Brenn", "alto"), ("Cato", "tenor"), ("Dunja", "bass"), ("Elsbet", "alto")]
APPLES = ["Russet", "Pippin", "Codlin", "Nonpareil", "Costard"]


def _filler(kind: str) -> str:
    """About 300 tokens of listing on one subject, none of it about the fact that follows."""
    lines = {
        "timetable": [f"The {6 + n}:{15 * (n % 4):02d} ferry from {STATIONS[n % 6]} calls at {STATIONS[(n + 2) % 6]} "
                      f"and {STATIONS[(n + 4) % 6]} before it reaches the mainland." for n in range(14)],
        "catalogue": [f"Shelf {n} of the reading room holds {40 + 7 * n} volumes on {SUBJECTS[n % 7]}, "
                      f"bound in {'green' if n % 2 else 'brown'} cloth." for n in range(1, 19)],
        "inventory": [f"Gear {n} has {24 + 6 * n} teeth of seasoned hornbeam and turns {PARTS[n % 5]} "
                      f"at {11 + n} revolutions a minute." for n in range(1, 17)],
        "weather": [f"On day {n} of the survey the wind blew from the {WINDS[n % 6]} at {4 + (n * 3) % 17} knots "
                    f"and the barometer read {990 + (n * 7) % 40} hectopascals." for n in range(1, 15)],
        "roster": [f"{VOICES[n % 5][0]} of family {n} sings {VOICES[n % 5][1]} in row {1 + n % 4} and has "
                   f"attended rehearsals for {2 + n} seasons." for n in range(1, 20)],
        "planting": [f"Row {n} of the slope is planted with {12 + n} {APPLES[n % 5]} trees grafted on "
                     f"{'dwarfing' if n % 3 else 'seedling'} rootstock." for n in range(1, 19)],
    }[kind]
    return " ".join(lines)


# name: (listing before the fact, the fact, a question only the fact answers)
LONG_DOCS = {
    "timetable.md": ("timetable", "Postscript: the clerk who typed this timetable keeps honeybees. Her hives gave 41 "
                     "jars of heather honey last autumn, and she sells the honey at the harbour office.",
                     "How many jars of heather honey did the clerk's beehives give?"),
    "catalogue.md": ("catalogue", "The caretaker keeps a grey tomcat called Ludo. The cat sleeps on the radiator by "
                     "the door and is fed sardines at noon; once he slept for three days in the atlas cabinet.",
                     "What is the grey tomcat that sleeps on the radiator called?"),
    "inventory.md": ("inventory", "The miller's daughter plays chess. She won the regional chess championship in "
                     "1994 with a celebrated knight sacrifice and now teaches chess at the village school.",
                     "Who won the regional chess championship in 1994?"),
    "weather.md": ("weather", "The observer's favourite dish is plum dumplings with poppy seed butter. He cooks the "
                   "dumplings every Sunday and eats them with sour cream.", "Which dish does the observer like best?"),
    "roster.md": ("roster", "The church organ has 1,240 pipes. The organ was rebuilt after a lightning strike in 1961, "
                  "and its largest pipe is five metres tall.", "How many pipes does the organ have?"),
    "planting.md": ("planting", "The farm tractor is painted bright orange and everyone calls it the Pumpkin. The "
                    "tractor is forty years old and still starts on the first try.",
                    "What nickname does the orange tractor have?"),
}


@pytest.fixture(scope="module")
def long_project(tmp_path_factory):
    from doctune.core.project import Project

    project = Project.create(tmp_path_factory.mktemp("long") / "project")
    texts = {name: f"# {name[:-3].title()}\n\n{_filler(kind)}\n\n{fact}\n" for name, (kind, fact, _) in LONG_DOCS.items()}
    ingest(project, write_docs(tmp_path_factory.mktemp("long-docs"), texts), chunk_tokens=512, chunk_overlap=64)
    index(project)
    return project


def test_long_chunks_are_found_by_a_fact_past_the_embedders_window(long_project):
    embedder = load_embedder(BUNDLED)
    capacity = embedder.window_tokens
    chunks = {chunk["doc_path"].rsplit("/", 1)[-1]: chunk for chunk in list_chunks(long_project)}
    assert sorted(chunks) == sorted(LONG_DOCS)  # one chunk per document
    retriever = Retriever(long_project)
    for name, (_, fact, question) in LONG_DOCS.items():
        text = chunks[name]["text"]
        before_fact = text[: text.index(fact)]
        assert len(embedder.model.tokenizer(before_fact, add_special_tokens=False, verbose=False)["input_ids"]) > capacity
        hits = retriever.search(question, k=1, mode="vector")
        assert fact in hits[0].text, (question, hits[0].doc_path)
        assert hits[0].chunk_id == chunks[name]["id"] and hits[0].doc_title  # the chunk itself, with its document


def test_windows_cover_the_whole_text_within_the_embedders_input():
    embedder = load_embedder(BUNDLED)
    capacity = embedder.window_tokens
    assert capacity == embedder.model.max_seq_length - 2  # [CLS] and [SEP]
    short, long = "The ferry leaves twice a week.", " ".join(_filler(kind) for kind in ("timetable", "roster", "weather"))
    windows = embedder.windows([short, long])
    assert windows[0] == [short]
    assert len(windows[1]) >= 3
    tokenize = embedder.model.tokenizer
    assert all(len(tokenize(window, add_special_tokens=False)["input_ids"]) <= capacity for window in windows[1])
    assert windows[1][0].startswith(long[:40]) and windows[1][-1].endswith(long[-40:])
    for earlier, later in zip(windows[1], windows[1][1:]):
        assert later[:30] in earlier  # consecutive windows overlap: nothing between them is lost
        assert all(window in long for window in (earlier, later))
    vectors = embedder.encode_chunks([short, long])
    assert [len(v) for v in vectors] == [1, len(windows[1])] and vectors[1].shape[1] == embedder.dim


def test_index_of_the_earlier_layout_is_refused_then_rebuilt(project, tmp_path):
    """An index written by the earlier code (one vector per chunk) is never searched nor mixed with new rows."""
    import pyarrow as pa

    from doctune.core.rag.index import TABLE, refresh_fts, text_sha
    from doctune.core.store import connect

    texts = {"tower.md": "# Tower\n\nThe Osk tower leans eleven degrees to the east and has 400 steps.\n",
             "mill.md": "# Mill\n\nThe Quintrel mill grinds barley on Thursdays only.\n"}
    ingest(project, write_docs(tmp_path / "docs", texts))
    chunks = list_chunks(project)
    embedder = load_embedder(BUNDLED)
    earlier = pa.schema([
        pa.field("chunk_id", pa.string(), nullable=False), pa.field("doc_id", pa.string(), nullable=False),
        pa.field("doc_path", pa.string()), pa.field("doc_title", pa.string()), pa.field("ordinal", pa.int32()),
        pa.field("page_start", pa.int32()), pa.field("page_end", pa.int32()),
        pa.field("text", pa.string(), nullable=False), pa.field("text_sha", pa.string(), nullable=False),
        pa.field("embedder", pa.string(), nullable=False),
        pa.field("vector", pa.list_(pa.float32(), embedder.dim), nullable=False),
    ])
    vectors = embedder.encode([chunk["text"] for chunk in chunks])
    rows = [{"chunk_id": chunk["id"], "doc_id": chunk["doc_id"], "doc_path": chunk["doc_path"],
             "doc_title": chunk["doc_title"], "ordinal": chunk["ordinal"], "page_start": None, "page_end": None,
             "text": chunk["text"], "text_sha": text_sha(chunk["text"]), "embedder": embedder.identity, "vector": vector}
            for chunk, vector in zip(chunks, vectors)]
    refresh_fts(connect(project).create_table(TABLE, pa.Table.from_pylist(rows, schema=earlier)))

    with pytest.raises(IndexStale, match="earlier version") as caught:
        Retriever(project)
    assert f"doctune index -p {project.root}" in str(caught.value)
    rebuilt, sink = index(project)
    assert rebuilt.rebuilt and rebuilt.embedded == rebuilt.total == len(chunks)
    assert any("earlier DocTune" in event["message"] for event in sink.of("log"))
    assert "400 steps" in Retriever(project).search("How many steps has the Osk tower?", k=1, mode="vector")[0].text
    again, _ = index(project)
    assert (again.rebuilt, again.embedded, again.unchanged) == (False, 0, len(chunks))
