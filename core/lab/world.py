"""A seeded, made-up world of people, towns and companies: the lab's documents and questions.

Why a made-up world: the lab must know exactly which facts a document states
and be sure no model knew them before. Every value is drawn **uniformly from a
closed vocabulary per attribute**, and multiple-choice distractors come from
the same vocabulary, so a model that has not read an entity is at chance (25%
on four options) however well it knows the world's habits.

The parts, all deterministic given a seed:

- ``make_world(seed, n_entities, avoid=...)`` → ``World``: ``entities`` (a list
  of ``Entity``: ``id``, ``name``, ``kind`` in ``person`` / ``town`` /
  ``company``, ``pronoun``, ``facts``: a list of ``Fact(attribute, value)``).
  ``avoid`` (another world or names) keeps new entities' names unseen: the
  lab's "user documents" are ``make_world(seed, 30, avoid=pretraining_world)``.
  Entities relate through shared vocabularies: a person's employer and a
  town's river are names other documents mention too (``ATTRIBUTES``).
- ``render_document(entity, rng) -> str``: Markdown, ``# Name`` then prose with
  one sentence per fact in a random order and a random template per fact
  (``render_sentences`` gives the ``(fact, sentence)`` pairs, ``fact_sentence``
  one fact's sentence: what a teacher needs for focal rewrites and paraphrases).
- ``World.entity_for_text(text)`` / ``World.by_name(name)``: the entity (and so
  the fact table) of a document, a chunk or a passage: the entity whose name
  occurs in it first (titles come first).
- Questions: ``ATTRIBUTES[attr].train_questions`` and ``.heldout_questions`` are
  two disjoint families of phrasings (``{n}`` is the entity's name);
  ``question(entity, attribute, family, rng)`` picks one. A lab teacher writes
  training items with the ``train`` family only and held-out questions with the
  ``heldout`` family only, so a tuned model is asked in words it never trained
  on. The answer to every question is the bare value (``fact.value``), which is
  also the option text that DocTune's multiple-choice likelihood scoring reads.
- ``multiple_choice(entity, attribute, rng, family="heldout")`` →
  ``MultipleChoice(question, options, answer, answer_index)``: four options,
  three distractors drawn from the attribute's vocabulary, the right one at a
  uniform position; ``answer`` is the letter A–D.

The reader student's pretraining world uses ``READER_WORLD_SEED``; any other
seed gives other entities (``avoid`` guarantees it).
"""
from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["person", "town", "company"]
Family = Literal["train", "heldout"]
KINDS: tuple[Kind, ...] = ("person", "town", "company")
LETTERS = "ABCD"
READER_WORLD_SEED = 1


@dataclass(frozen=True)
class Attribute:
    """One attribute: its vocabulary, how documents state it, and how questions ask it.

    Sentence templates use ``{s}`` (the subject: a name, a pronoun or "the
    town"), ``{ps}`` (its possessive) and ``{v}`` (the value); question
    templates use ``{n}`` (the entity's full name).
    """

    name: str
    kind: Kind
    label: str
    """In words, for teachers' texts: "birth year", "home river"."""
    values: tuple[str, ...]
    sentences: tuple[str, ...]
    train_questions: tuple[str, ...]
    heldout_questions: tuple[str, ...]


CITIES = ("Velmora", "Draskey", "Ossenby", "Talvik", "Brennach", "Corvale", "Hestmoor", "Quillan", "Marrowick",
          "Sundale", "Pellinor", "Ravensk", "Ulmhurst", "Kestrel Bay", "Yarrow", "Findon", "Grisholm", "Lanmere",
          "Abbotsreach", "Vantry", "Elsworth", "Norrin", "Tiberly", "Zennor")
COMPANIES = ("Tarrow Mills", "Brightwater Glassworks", "Okely & Daughters", "Halvard Shipping", "Corrin Looms",
             "Stellan Instruments", "Moorgate Press", "Ashdown Foundry", "Pellucid Optics", "Greywether Bank",
             "Lumen Clockworks", "Fennick Brewery", "Orrin Rail", "Saltmarsh Salt Company", "Wexley Pharmacy",
             "Kindle & Rowe", "Bramblecote Seeds", "Dunmore Ropeworks", "Quayside Fisheries", "Vesper Lamps")
FOUNDERS = ("Amalie Corveth", "Otto Brannick", "Liesel Varn", "Tomas Hale", "Ingrid Moss", "Piet Calloway",
            "Edda Strom", "Rafael Quent", "Marta Oyelaran", "Jonas Pike", "Selma Achter", "Caspar Lind",
            "Nora Fielding", "Henrik Tauss", "Wilma Ashby", "Felix Ormond", "Greta Vallis", "Anton Rusk",
            "Clara Dunwich", "Matthias Orr")


def _years(start: int, count: int) -> tuple[str, ...]:
    return tuple(str(year) for year in range(start, start + count))


ATTRIBUTES: dict[str, Attribute] = {a.name: a for a in (
    Attribute(
        "birth_year", "person", "birth year", _years(1921, 60),
        ("{s} was born in {v}.", "{ps} birth year is {v}.", "In {v}, {s} was born.", "{s} came into the world in {v}."),
        ("In what year was {n} born?", "When was {n} born?", "What is the birth year of {n}?"),
        ("Which year was {n} born in?", "{n} was born in what year?"),
    ),
    Attribute(
        "birth_city", "person", "city of birth", CITIES,
        ("{s} was born in the city of {v}.", "{ps} birthplace is {v}.", "{s} grew up in {v}, the city of {ps} birth.",
         "The city of {v} is where {s} was born."),
        ("In which city was {n} born?", "Where was {n} born?", "What is the birthplace of {n}?"),
        ("Which city is the hometown of {n}?", "{n} comes from which city?"),
    ),
    Attribute(
        "profession", "person", "profession",
        ("glassblower", "cartographer", "beekeeper", "locksmith", "violinist", "surveyor", "bookbinder", "chemist",
         "stonemason", "ferry pilot", "weaver", "astronomer", "botanist", "clockmaker", "translator", "potter",
         "harbour master", "archivist", "engraver", "midwife"),
        ("{s} works as a {v}.", "By profession, {s} is a {v}.", "{ps} profession is {v}.",
         "{s} earns a living as a {v}."),
        ("What is the profession of {n}?", "What does {n} do for a living?", "What job does {n} have?"),
        ("What is the occupation of {n}?", "{n} works in which profession?"),
    ),
    Attribute(
        "employer", "person", "employer", COMPANIES,
        ("{s} is employed by {v}.", "{ps} employer is {v}.", "{s} works for {v}.", "For years {s} has worked at {v}."),
        ("Which company employs {n}?", "Who is the employer of {n}?", "Which company does {n} work for?"),
        ("What organisation is {n} on the staff of?", "{n} is employed by which company?"),
    ),
    Attribute(
        "hobby", "person", "favourite pastime",
        ("chess", "beekeeping", "rowing", "birdwatching", "fencing", "kite flying", "pottery", "archery",
         "stargazing", "sailing", "knitting", "cycling", "fly fishing", "choir singing", "woodcarving", "juggling"),
        ("In {ps} free time, {s} enjoys {v}.", "{ps} favourite pastime is {v}.", "{s} spends weekends on {v}.",
         "Away from work, {s} loves {v}."),
        ("What is the favourite pastime of {n}?", "What does {n} enjoy in free time?", "Which hobby does {n} have?"),
        ("How does {n} like to spend leisure time?", "What leisure activity is {n} fond of?"),
    ),
    Attribute(
        "province", "town", "province",
        ("Harrowmark", "Lowenfeld", "Carrick Downs", "Essenmoor", "Tallis", "Vardehold", "Blackwater", "Ormsland",
         "Sedgemoor", "Kelloway", "Drummond", "Wyrley", "Ambervale", "Skarn", "Merrow", "Threlkeld"),
        ("{s} is a town in the province of {v}.", "{s} lies in {v} province.", "The province of {v} is home to {s}.",
         "{s} belongs to the province of {v}."),
        ("In which province is {n}?", "What province is {n} located in?", "Where is the town of {n}?"),
        ("{n} is part of which province?", "Which province contains {n}?"),
    ),
    Attribute(
        "river", "town", "river",
        ("Aldra", "Senn", "Morrow", "Tessel", "Ouse Minor", "Kallan", "Brisk", "Vey", "Lorne", "Hollin", "Draxe",
         "Ember", "Quill", "Saffe", "Tarn", "Wendle"),
        ("{s} lies on the river {v}.", "The river {v} flows through {s}.", "{s} was built on the banks of the {v}.",
         "{ps} river is the {v}."),
        ("Which river flows through {n}?", "On what river does {n} lie?", "What river runs through {n}?"),
        ("{n} is built on which river?", "Name the river that passes through {n}."),
    ),
    Attribute(
        "founded", "town", "founding year", _years(1640, 60),
        ("{s} was founded in {v}.", "{s} dates from {v}, when it was founded.", "The founding of {s} took place in {v}.",
         "Settlers founded {s} in {v}."),
        ("When was {n} founded?", "In what year was {n} founded?", "What is the founding year of {n}?"),
        ("{n} was established in which year?", "Which year saw the founding of {n}?"),
    ),
    Attribute(
        "population", "town", "population",
        ("1,200", "2,800", "3,500", "4,200", "5,900", "7,300", "8,600", "9,100", "11,000", "12,400", "15,700",
         "18,200", "21,000", "26,500", "31,800", "40,300"),
        ("{s} has a population of {v}.", "About {v} people live in {s}.", "{ps} population is {v}.",
         "{s} is home to {v} inhabitants."),
        ("What is the population of {n}?", "How many people live in {n}?", "How many inhabitants does {n} have?"),
        ("{n} is home to how many people?", "What number of residents does {n} count?"),
    ),
    Attribute(
        "landmark", "town", "best-known landmark",
        ("a copper bridge", "a glass observatory", "a leaning lighthouse", "a salt cathedral", "a floating market",
         "a stone labyrinth", "a clock tower", "a whale museum", "a sunken garden", "a windmill row",
         "an iron pier", "a rope bridge", "a marble fountain", "a painted tunnel", "a tidal pool", "a chalk giant"),
        ("{s} is known for {v}.", "Visitors to {s} come to see {v}.", "{ps} best-known landmark is {v}.",
         "The pride of {s} is {v}."),
        ("What is {n} known for?", "What landmark is {n} famous for?", "What is the best-known sight in {n}?"),
        ("What is the famous landmark of {n}?", "Which sight do visitors to {n} come to see?"),
    ),
    Attribute(
        "industry", "company", "industry",
        ("shipbuilding", "textiles", "printing", "brewing", "glassmaking", "banking", "mining", "clockmaking",
         "pharmacy", "rail transport", "fishing", "optics", "papermaking", "tea trading", "toy making", "insurance"),
        ("{s} is a company in the {v} trade.", "{s} works in {v}.", "{ps} business is {v}.",
         "{s} made its name in {v}."),
        ("What industry is {n} in?", "What business is {n} in?", "What trade does {n} work in?"),
        ("{n} operates in which industry?", "Which sector does {n} belong to?"),
    ),
    Attribute(
        "headquarters", "company", "headquarters", CITIES,
        ("{s} has its headquarters in {v}.", "{s} is based in {v}.", "{ps} head office stands in {v}.",
         "The city of {v} hosts the head office of {s}."),
        ("Where is {n} headquartered?", "In which city is {n} based?", "Where are the headquarters of {n}?"),
        ("Which city is home to the main office of {n}?", "{n} has its head office in which city?"),
    ),
    Attribute(
        "founder", "company", "founder", FOUNDERS,
        ("{s} was founded by {v}.", "{v} founded {s}.", "{ps} founder was {v}.", "{s} was started by {v}."),
        ("Who founded {n}?", "Who is the founder of {n}?", "Who started {n}?"),
        ("{n} was set up by whom?", "Which person established {n}?"),
    ),
    Attribute(
        "product", "company", "best-known product",
        ("sailcloth", "pocket watches", "fountain pens", "oil lamps", "rope", "telescopes", "barometers",
         "porcelain cups", "tin toys", "smoked herring", "rail carriages", "ink", "bicycles", "umbrellas",
         "seed packets", "cough syrup"),
        ("{s} is best known for its {v}.", "{s} makes {v}.", "{ps} best-known product is {v}.",
         "Most people know {s} for its {v}."),
        ("What does {n} make?", "What product is {n} known for?", "What is the best-known product of {n}?"),
        ("Which goods come from {n}?", "{n} manufactures what?"),
    ),
)}

KIND_ATTRIBUTES: dict[Kind, tuple[str, ...]] = {
    kind: tuple(name for name, a in ATTRIBUTES.items() if a.kind == kind) for kind in KINDS
}
KIND_NOUN: dict[Kind, str] = {"person": "person", "town": "town", "company": "company"}

_SYLLABLES = ("ka", "ta", "lo", "mer", "vin", "sa", "dor", "el", "ri", "an", "bra", "cor", "the", "mi", "ol", "ven",
              "ha", "ru", "sel", "tam", "gar", "nis", "pe", "lu", "zan", "ber", "ok", "fi", "dra", "wen", "ys", "mo")
_TOWN_ENDINGS = ("ford", "by", "wick", "holm", "stead", "mouth", "dale", "ton", "mere", "burg")
_COMPANY_ENDINGS = ("Works", "Company", "Guild", "Brothers", "Trading", "Holdings", "Cooperative", "Studio")


@dataclass(frozen=True)
class Fact:
    attribute: str
    value: str

    @property
    def label(self) -> str:
        return ATTRIBUTES[self.attribute].label


@dataclass(frozen=True)
class Entity:
    id: str
    name: str
    kind: Kind
    pronoun: str
    """Subject pronoun for people ("she"/"he"); empty for towns and companies ("the town")."""
    facts: tuple[Fact, ...]

    def fact(self, attribute: str) -> Fact:
        for fact in self.facts:
            if fact.attribute == attribute:
                return fact
        raise KeyError(f"{self.name} has no {attribute}")

    @property
    def file_name(self) -> str:
        """A Markdown file name for the entity's document."""
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") + ".md"


@dataclass
class World:
    seed: int
    entities: list[Entity] = field(default_factory=list)

    def by_name(self, name: str) -> Entity:
        for entity in self.entities:
            if entity.name == name:
                return entity
        raise KeyError(f"no entity named {name!r} in world {self.seed}")

    def entity_for_text(self, text: str) -> Entity | None:
        """The entity a document, chunk or passage is about: the one whose name occurs first (titles come first)."""
        found = [(text.find(e.name), -len(e.name), i) for i, e in enumerate(self.entities) if e.name in text]
        return self.entities[min(found)[2]] if found else None

    @property
    def names(self) -> set[str]:
        return {e.name for e in self.entities}


def _word(rng: random.Random, low: int, high: int) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(low, high))).capitalize()


def _name(kind: Kind, rng: random.Random) -> str:
    if kind == "person":
        return f"{_word(rng, 2, 2)} {_word(rng, 2, 3)}"
    if kind == "town":
        return _word(rng, 1, 2) + rng.choice(_TOWN_ENDINGS)
    return f"{_word(rng, 2, 2)} {rng.choice(_COMPANY_ENDINGS)}"


def make_world(seed: int, n_entities: int, *, avoid: World | Iterable[str] | None = None,
               kinds: Sequence[Kind] = KINDS) -> World:
    """``n_entities`` entities, kinds in turn, each attribute's value drawn uniformly from its vocabulary.

    Names are unique, never a vocabulary value, and never one of ``avoid``'s.
    """
    rng = random.Random(f"doctune-lab-world-{seed}")
    taken = set(avoid.names if isinstance(avoid, World) else (avoid or ()))
    taken |= {v for a in ATTRIBUTES.values() for v in a.values}
    world = World(seed)
    for index in range(n_entities):
        kind = kinds[index % len(kinds)]
        name = _name(kind, rng)
        while name in taken or any(name in other or other in name for other in world.names):
            name = _name(kind, rng)
        taken.add(name)
        facts = tuple(Fact(attr, rng.choice(ATTRIBUTES[attr].values)) for attr in KIND_ATTRIBUTES[kind])
        pronoun = rng.choice(("she", "he")) if kind == "person" else ""
        world.entities.append(Entity(f"w{seed}-{index:04d}", name, kind, pronoun, facts))
    return world


def _subject(entity: Entity, rng: random.Random, first: bool) -> tuple[str, str]:
    """How a sentence names the entity: (subject, possessive). The first sentence always uses the full name."""
    if first or rng.random() < 0.6:
        return entity.name, f"{entity.name}'s"
    if entity.kind == "person":
        return entity.pronoun, "her" if entity.pronoun == "she" else "his"
    noun = KIND_NOUN[entity.kind]
    return f"the {noun}", f"the {noun}'s"


def capitalise_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def fact_sentence(entity: Entity, fact: Fact, rng: random.Random, *, first: bool = True) -> str:
    """One sentence stating ``fact`` about ``entity`` in a random template (full name unless ``first`` is false)."""
    template = rng.choice(ATTRIBUTES[fact.attribute].sentences)
    subject, possessive = _subject(entity, rng, first)
    text = template.format(s=subject, ps=possessive, v=fact.value)
    return capitalise_first(text.replace(" a a", " an a").replace(" a e", " an e").replace(" a o", " an o"))


def render_sentences(entity: Entity, rng: random.Random) -> list[tuple[Fact, str]]:
    """One sentence per fact, facts in a random order; only the first is sure to use the full name."""
    facts = list(entity.facts)
    rng.shuffle(facts)
    return [(fact, fact_sentence(entity, fact, rng, first=index == 0)) for index, fact in enumerate(facts)]


def render_document(entity: Entity, rng: random.Random) -> str:
    """The entity's Markdown document: ``# Name`` and a paragraph of its facts in varied prose."""
    sentences = " ".join(sentence for _, sentence in render_sentences(entity, rng))
    return f"# {entity.name}\n\n{sentences}\n"


EXTRA_HELDOUT: dict[str, tuple[str, ...]] = {
    "birth_year": ("{n} arrived in the world in which year, according to the records?",
                   "Records of {n} start with which year?"),
    "birth_city": ("{n} first saw daylight in which city?", "Which city's records show the arrival of {n}?"),
    "profession": ("Which trade or calling does {n} follow?",),
    "employer": ("On whose payroll is {n}?",),
    "hobby": ("Outside working hours, what keeps {n} busy?",),
    "province": ("The town of {n} falls under the administration of which province?",
                 "Under which regional administration does {n} fall?"),
    "river": ("Along the banks of which waterway was {n} built?",),
    "founded": ("Settlers established {n} in which year?",),
    "population": ("Roughly how many residents call {n} home?",),
    "landmark": ("Which sight draws travellers to {n}?",),
    "industry": ("In which line of business does {n} operate?", "Which sector of the economy is {n} part of?"),
    "headquarters": ("Which city houses the head office of {n}?",),
    "founder": ("Which person set up {n}?",),
    "product": ("Which goods is {n} famous for?",),
}
"""More held-out phrasings, in words of their own (the leakage check drops some of the ``heldout`` family against
the ``train`` family's phrasings of the same fact). The lab teacher asks held-out questions in both; the reader
learned the language in all phrasings (``reader.any_question``), as a pretrained model knows its paraphrases."""


def question(entity: Entity, attribute: str, family: Family, rng: random.Random) -> str:
    """A question asking ``attribute`` of ``entity`` in a phrasing of ``family`` (``train`` or ``heldout``)."""
    spec = ATTRIBUTES[attribute]
    templates = spec.train_questions if family == "train" else spec.heldout_questions
    return capitalise_first(rng.choice(templates).format(n=entity.name))


@dataclass(frozen=True)
class MultipleChoice:
    question: str
    options: tuple[str, str, str, str]
    answer: str
    """The right option's letter, A–D."""
    answer_index: int
    attribute: str

    @property
    def reference(self) -> str:
        return self.options[self.answer_index]


def multiple_choice(entity: Entity, attribute: str, rng: random.Random, family: Family = "heldout") -> MultipleChoice:
    """A four-option question on one fact; distractors are other values of the same attribute."""
    value = entity.fact(attribute).value
    distractors = rng.sample([v for v in ATTRIBUTES[attribute].values if v != value], 3)
    index = rng.randrange(4)
    a, b, c, d = distractors[:index] + [value] + distractors[index:]
    return MultipleChoice(question(entity, attribute, family, rng), (a, b, c, d), LETTERS[index], index, attribute)
