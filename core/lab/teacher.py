"""The lab teacher: DocTune's ``Teacher`` played from the lab world's fact tables, with no language model.

It stands in for a good real teacher in the knowledge lab and the offline
check, so that what the student learns is decided by DocTune's method, not by
a weak teacher. It never sees the student. For every request it:

1. recognises the prompt: the system message of one of DocTune's recipe
   prompts (``resources/prompts/*.toml``) or the evaluation judge's; the user
   message is read back into the template's values (title, passage, number,
   question, style, entities …) by the template itself;
2. reads the passage's facts: a lab document states each fact in one of the
   world's sentence templates (``doctune.core.lab.world``) with a value from a
   closed vocabulary, so the facts (and only the facts the passage states) are
   recovered exactly; the title names the entity;
3. writes the reply the prompt asks for, as valid JSON within the schema's
   limits: question/answer/explanation, focal questions and rewrites,
   rephrasings in the four WRAP styles, EntiGraph entities and relation texts,
   held-out multiple-choice and open questions, grounding and answer verdicts.

Surface forms vary (sentence templates, fact order, connectors), drawn from a
random generator seeded by the request (messages and seed): the same request
gets the same reply, a retry with another seed gets another.

Training questions use only the world's training phrasings; held-out
questions use the world's held-out phrasings and, where all of those are too
close in words to a training phrasing of the same fact (DocTune's leakage
check would drop them), phrasings of their own (``world.EXTRA_HELDOUT``).
Every held-out phrasing is checked with DocTune's own leakage filter against
all training phrasings of its fact before it is used. A passage with no fact
of the lab world (a document that is not the lab's) gets a failed call, which
synthesis records and counts; a request with no document at all (the Teacher
page's test) gets a reply in the asked shape that says what this teacher is.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from doctune.core.config import SynthSettings
from doctune.core.evaluate.judge import JUDGE_SYSTEM
from doctune.core.lab.world import (
    ATTRIBUTES,
    EXTRA_HELDOUT,
    KIND_NOUN,
    LETTERS,
    Entity,
    Fact,
    capitalise_first,
    fact_sentence,
)
from doctune.core.synth.filters import LeakageIndex, grounding_share
from doctune.core.synth.prompts import load_prompt
from doctune.core.teachers.base import Teacher, TeacherCallError, TeacherReply, estimate_tokens

RECIPE_PROMPTS = ("qa", "focal_question", "focal_rewrite", "rephrase", "entigraph_entities", "entigraph_relation",
                  "eval_mc", "eval_open", "grounding_judge")
JUDGE = "judge"
PROBE = "probe"
PROBE_TEXT = "The lab teacher writes DocTune's recipe replies from the lab world's documents, without a model."
LEAKAGE_THRESHOLD = SynthSettings.model_fields["leakage_threshold"].default
"""Held-out phrasings must pass DocTune's leakage check at its default threshold against every training phrasing."""


_JUDGE_USER = re.compile(r"Question: (?P<question>.*?)\n\nReference answer: (?P<reference>.*?)\n\n"
                         r"Source passage:\n(?P<passage>.*)\n\nCandidate answer: (?P<answer>.*?)\n\n"
                         r"Your verdict as JSON:\s*$", re.DOTALL)
_PLACEHOLDER = re.compile(r"\$(\w+)")


class NotALabPrompt(TeacherCallError):
    """The request is not one of DocTune's recipe or judge prompts, or its passage states no lab fact."""


@dataclass(frozen=True)
class Request:
    prompt: str
    """A recipe prompt's name (``qa``, ``eval_mc`` …), ``judge`` (the evaluation's judge of open answers) or
    ``probe`` (a request with no document in it, like the Teacher page's test)."""
    values: dict[str, str]
    """What the template was filled with: ``passage``, ``title``, ``number``, ``question`` …"""
    schema: dict[str, Any] | None


# ----- recognising the request ---------------------------------------------------------------------------------

@cache
def _user_pattern(template: str) -> re.Pattern[str]:
    """The user template as a regular expression whose groups read its values back."""
    parts, seen, position = [], set(), 0
    for match in _PLACEHOLDER.finditer(template):
        parts.append(re.escape(template[position:match.start()]))
        name = match.group(1)
        parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>.*?)")
        seen.add(name)
        position = match.end()
    parts.append(re.escape(template[position:]))
    return re.compile("^" + "".join(parts) + "$", re.DOTALL)


def recognise(messages: list[dict[str, str]], schema: dict[str, Any] | None = None) -> Request:
    """Which prompt the messages are, and the values it was filled with."""
    system = next((m["content"] for m in messages if m.get("role") == "system"), "").strip()
    user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "").strip()
    if system == JUDGE_SYSTEM.strip():
        match = _JUDGE_USER.match(user)
        if match:
            return Request(JUDGE, match.groupdict(), schema)
    for name in RECIPE_PROMPTS:
        prompt = load_prompt(name)
        if system == prompt.system:
            match = _user_pattern(prompt.user).match(user)
            if match:
                return Request(name, match.groupdict(), schema)
    if "Passage:" not in user and "Text:" not in user:
        return Request(PROBE, {}, schema)
    raise NotALabPrompt("The lab teacher answers only DocTune's own recipe and judge prompts; this request is none "
                        f"of them (it begins {user[:60]!r}).")


# ----- reading the facts of a passage --------------------------------------------------------------------------

@cache
def _fact_patterns(attribute: str) -> list[re.Pattern[str]]:
    """One pattern per sentence template of ``attribute``: any subject, the value from its vocabulary."""
    spec = ATTRIBUTES[attribute]
    values = "|".join(re.escape(value) for value in sorted(spec.values, key=len, reverse=True))
    patterns = []
    for template in spec.sentences:
        text = re.escape(template.replace("a {v}", "\0{v}"))
        text = text.replace(re.escape("{s}"), r"[^.!?\n]*?").replace(re.escape("{ps}"), r"[^.!?\n]*?")
        text = text.replace("\0", "an? ").replace(re.escape("{v}"), f"(?P<v>{values})")
        patterns.append(re.compile(text, re.IGNORECASE))
    return patterns


def read_facts(text: str) -> list[Fact]:
    """The lab facts ``text`` states, in the order it states them (the first statement of each attribute)."""
    found: dict[str, tuple[int, str]] = {}
    for attribute in ATTRIBUTES:
        for pattern in _fact_patterns(attribute):
            for match in pattern.finditer(text):
                value = next(v for v in ATTRIBUTES[attribute].values if v.lower() == match.group("v").lower())
                if attribute not in found or match.start("v") < found[attribute][0]:
                    found[attribute] = (match.start("v"), value)
    return [Fact(attribute, value) for attribute, (_, value) in sorted(found.items(), key=lambda kv: kv[1][0])]


def _pronoun(text: str) -> str:
    she = len(re.findall(r"\b(?:she|her)\b", text, re.IGNORECASE))
    he = len(re.findall(r"\b(?:he|his|him)\b", text, re.IGNORECASE))
    return "she" if she > he else "he" if he > she else ""


def entity_of(title: str, passage: str) -> Entity:
    """The entity a passage is about, with the facts the passage states (the title names it)."""
    facts = read_facts(passage)
    if not facts:
        raise NotALabPrompt(f"The passage of '{title}' states no fact of the lab world: the lab teacher writes only "
                            "about the lab's own documents.")
    name = title.strip().lstrip("#").strip()
    if not name or name == "(untitled)":
        name = passage.strip().splitlines()[0].lstrip("#").strip()
    kind = ATTRIBUTES[facts[0].attribute].kind
    facts = [fact for fact in facts if ATTRIBUTES[fact.attribute].kind == kind]
    entity_id = "lab-" + hashlib.sha256(name.encode()).hexdigest()[:12]
    return Entity(entity_id, name, kind, _pronoun(passage) if kind == "person" else "", tuple(facts))


# ----- phrasings --------------------------------------------------------------------------------------------------

def training_questions(entity: Entity, attribute: str) -> list[str]:
    """The world's training phrasings of one fact's question."""
    return [capitalise_first(t.format(n=entity.name)) for t in ATTRIBUTES[attribute].train_questions]


def heldout_questions(entity: Entity, attribute: str) -> list[str]:
    """Held-out phrasings of one fact's question that DocTune's leakage check passes against every training
    phrasing of it: the world's held-out family first, then ``EXTRA_HELDOUT``."""
    seen = LeakageIndex(training_questions(entity, attribute), LEAKAGE_THRESHOLD)
    candidates = [*ATTRIBUTES[attribute].heldout_questions, *EXTRA_HELDOUT[attribute]]
    return [q for q in (capitalise_first(t.format(n=entity.name)) for t in candidates) if not seen.leaks(q)]


def _sentence(entity: Entity, fact: Fact, rng: random.Random, *, first: bool = True) -> str:
    """A sentence stating ``fact``; a pronoun only where the passage gave one."""
    return fact_sentence(entity, fact, rng, first=first or (entity.kind == "person" and not entity.pronoun))


def _grounded_sentence(entity: Entity, fact: Fact, passage: str, rng: random.Random) -> str:
    """A self-contained sentence stating ``fact`` in the words closest to the passage's (a reference answer that
    DocTune's grounding check finds in its source)."""
    candidates = [capitalise_first(t.format(s=entity.name, ps=f"{entity.name}'s", v=fact.value))
                  for t in ATTRIBUTES[fact.attribute].sentences]
    rng.shuffle(candidates)
    return max(candidates, key=lambda sentence: grounding_share(sentence, passage))


def _ordered(entity: Entity, salt: str, passage: str) -> list[Fact]:
    """The passage's facts in an order fixed by passage and purpose: numbers 1, 2, … cover every fact in turn."""
    facts = list(entity.facts)
    random.Random(hashlib.sha256(f"{salt}\0{passage}".encode()).hexdigest()).shuffle(facts)
    return facts


def _nth(entity: Entity, values: dict[str, str], salt: str, from_end: bool = False) -> tuple[Fact, int]:
    """The fact a numbered request is about, and how many times the facts have come round before it; counted
    ``from_end`` of the same order, open questions ask first what multiple choice asks last."""
    facts = _ordered(entity, salt, values["passage"])
    index = max(0, int(values.get("number") or "1") - 1)
    fact = facts[-1 - index % len(facts)] if from_end else facts[index % len(facts)]
    return fact, index // len(facts)


def _fit(text: str, limit: int | None) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters."""
    if limit is None or len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:")
    return cut or text[:limit]


def _join_to(sentences: list[str], low: int, high: int | None, closing: str) -> str:
    """Sentences joined while they fit in ``high`` characters; ``closing`` added while shorter than ``low``."""
    text = ""
    for sentence in sentences:
        candidate = f"{text} {sentence}".strip()
        if high is not None and len(candidate) > high and text:
            break
        text = candidate
    while len(text) < low and (high is None or len(text) + len(closing) + 1 <= high):
        text = f"{text} {closing}".strip()
    return _fit(text, high)


def _limits(schema: dict[str, Any] | None, field: str) -> tuple[int, int | None]:
    spec = ((schema or {}).get("properties") or {}).get(field) or {}
    if spec.get("type") == "array":
        spec = spec.get("items") or {}
    return int(spec.get("minLength", 0)), spec.get("maxLength")


# ----- the replies ------------------------------------------------------------------------------------------------

Writer = Callable[[Request, random.Random], dict[str, Any]]


def _subject(request: Request) -> Entity:
    return entity_of(request.values.get("title", ""), request.values["passage"])


def write_qa(request: Request, rng: random.Random) -> dict[str, Any]:
    entity = _subject(request)
    fact, rounds = _nth(entity, request.values, "qa")
    phrasings = training_questions(entity, fact.attribute)
    offset = int(hashlib.sha256(request.values["passage"].encode()).hexdigest()[:4], 16)
    sentence = _sentence(entity, fact, rng)
    explanations = [sentence, f"The document on {entity.name} says so: {sentence}",
                    f"{entity.name}'s {fact.label} is given in the text as {fact.value}."]
    _, high = _limits(request.schema, "explanation")
    fitting = [e for e in explanations if high is None or len(e) <= high] or [sentence]
    return {"question": phrasings[(rounds + offset) % len(phrasings)], "answer": f"{fact.value}.",
            "explanation": _fit(rng.choice(fitting), high)}


def write_focal_question(request: Request, rng: random.Random) -> dict[str, Any]:
    entity = _subject(request)
    fact, rounds = _nth(entity, request.values, "focal")
    phrasings = training_questions(entity, fact.attribute)
    return {"question": phrasings[(rounds + rng.randrange(len(phrasings))) % len(phrasings)]}


def _asked_fact(entity: Entity, question: str) -> Fact:
    """The fact a question asks about: the one whose phrasings it is (else whose label words it shares most)."""
    wanted = question.strip().lower()
    for fact in entity.facts:
        if wanted in (q.lower() for q in training_questions(entity, fact.attribute)):
            return fact
    words = set(re.findall(r"\w+", wanted))
    return max(entity.facts, key=lambda f: len(words & set(f.label.split())))


def _listed(entity: Entity) -> str:
    """"the birth year, profession and employer of X"."""
    labels = [fact.label for fact in entity.facts]
    listed = ", ".join(labels[:-1]) + f" and {labels[-1]}" if len(labels) > 1 else labels[0]
    return f"the {listed} of {entity.name}"


def _closing(entity: Entity) -> str:
    return f"In short, the document on {entity.name} records {_listed(entity)}."


def write_focal_rewrite(request: Request, rng: random.Random) -> dict[str, Any]:
    entity = _subject(request)
    question = request.values.get("question", "").strip()
    main = _asked_fact(entity, question)
    others = [fact for fact in entity.facts if fact != main]
    rng.shuffle(others)
    answer = _sentence(entity, main, rng)
    opening = rng.choice([f"{question} {answer}", f"{answer} That answers the question: {question}",
                          f"To the question \"{question}\" the document on {entity.name} gives a clear answer. "
                          f"{answer}"])
    connector = rng.choice(["Beyond that,", "The document also tells us more.", "Other facts relate to it.", ""])
    rest = [_sentence(entity, fact, rng, first=False) for fact in others]
    low, high = _limits(request.schema, "text")
    sentences = [opening] + ([connector] if connector and rest else []) + rest
    return {"text": _join_to(sentences, low, high, _closing(entity))}


def _rephrased(entity: Entity, style: int, rng: random.Random) -> list[str]:
    facts = list(entity.facts)
    rng.shuffle(facts)
    noun = KIND_NOUN[entity.kind]
    if style == 0:  # plain words
        return [f"This is about {entity.name}.", *(_sentence(entity, f, rng, first=i == 0) for i, f in
                                                    enumerate(facts)), "That is what the text tells us."]
    if style == 1:  # encyclopedia entry
        ordered = [f for f in entity.facts]
        return [f"{entity.name} is a {noun} described in the records.",
                *(_sentence(entity, f, rng, first=False) for f in ordered)]
    if style == 2:  # terse technical notes
        separator = rng.choice(["; ", ". ", " | "])
        return [f"{entity.name} ({noun}):", separator.join(f"{f.label}: {f.value}" for f in facts) + "."]
    pairs = []  # questions each followed by its answer
    for fact in facts:
        phrasing = rng.choice(training_questions(entity, fact.attribute))
        pairs += [phrasing, _sentence(entity, fact, rng)]
    return pairs


def write_rephrase(request: Request, rng: random.Random) -> dict[str, Any]:
    entity = _subject(request)
    styles = load_prompt("rephrase").lists["styles"]
    given = request.values.get("style", "")
    style = styles.index(given) if given in styles else 0
    low, high = _limits(request.schema, "text")
    return {"text": _join_to(_rephrased(entity, style, rng), low, high, _closing(entity))}


def write_entities(request: Request, rng: random.Random) -> dict[str, Any]:
    entity = _subject(request)
    spec = ((request.schema or {}).get("properties") or {}).get("entities") or {}
    most = int(spec.get("maxItems", 1 + len(entity.facts)))
    _, item_high = _limits(request.schema, "entities")
    names = [entity.name, *(fact.value for fact in entity.facts)]
    names = [name for name in names if item_high is None or len(name) <= item_high][:most]
    _, high = _limits(request.schema, "summary")
    summary = f"The document describes {entity.name}, a {KIND_NOUN[entity.kind]}, and gives {_listed(entity)}."
    return {"summary": _fit(summary, high), "entities": names}


def write_relation(request: Request, rng: random.Random) -> dict[str, Any]:
    entity = _subject(request)
    chosen = re.findall(r'"([^"]*)"', request.values.get("entities", ""))
    by_value = {fact.value.lower(): fact for fact in entity.facts}
    facts = [by_value[name.lower()] for name in chosen if name.lower() in by_value]
    named = [name for name in chosen if name.lower() not in by_value and name != entity.name]
    sentences = []
    if len(facts) >= 2:
        listed = ", ".join(fact.value for fact in facts[:-1]) + f" and {facts[-1].value}"
        sentences.append(rng.choice([f"{listed} are linked through {entity.name}.",
                                     f"What ties {listed} together is {entity.name}.",
                                     f"In the document on {entity.name}, {listed} belong to the same account."]))
    for fact in facts:
        sentences.append(rng.choice([f"{fact.value} is {entity.name}'s {fact.label}.",
                                     f"For {entity.name}, {fact.value} is the {fact.label}."]))
        sentences.append(_grounded_sentence(entity, fact, request.values["passage"], rng))
    for name in named:
        sentences.append(f"{name} figures in the document on {entity.name} without a stated link.")
    if not facts:
        sentences += [_sentence(entity, fact, rng) for fact in entity.facts[:2]]
    low, high = _limits(request.schema, "text")
    return {"text": _join_to([capitalise_first(s) for s in sentences], low, high, _closing(entity))}


def _heldout(request: Request, rng: random.Random, open_question: bool) -> tuple[Entity, Fact, str]:
    entity = _subject(request)
    fact, rounds = _nth(entity, request.values, "eval", from_end=open_question)
    phrasings = heldout_questions(entity, fact.attribute)
    if not phrasings:
        raise NotALabPrompt(f"No held-out phrasing of the {fact.label} of {entity.name} passes the leakage check.")
    return entity, fact, phrasings[(rounds + rng.randrange(len(phrasings))) % len(phrasings)]


def write_mc(request: Request, rng: random.Random) -> dict[str, Any]:
    _, fact, question = _heldout(request, rng, open_question=False)
    distractors = rng.sample([v for v in ATTRIBUTES[fact.attribute].values if v != fact.value], 3)
    index = rng.randrange(4)
    return {"question": question, "options": distractors[:index] + [fact.value] + distractors[index:],
            "answer": LETTERS[index]}


def write_open(request: Request, rng: random.Random) -> dict[str, Any]:
    entity, fact, question = _heldout(request, rng, open_question=True)
    _, high = _limits(request.schema, "answer")
    return {"question": question, "answer": _fit(_grounded_sentence(entity, fact, request.values["passage"], rng),
                                                    high)}


def _values_in(text: str, kind: str | None = None) -> set[tuple[str, str]]:
    """(attribute, value) of every vocabulary value ``text`` mentions as a whole word."""
    found = set()
    for attribute, spec in ATTRIBUTES.items():
        if kind is not None and spec.kind != kind:
            continue
        for value in spec.values:
            if re.search(rf"(?<!\w){re.escape(value)}(?!\w)", text, re.IGNORECASE):
                found.add((attribute, value))
    return found


def write_grounding(request: Request, rng: random.Random) -> dict[str, Any]:
    facts = {(f.attribute, f.value) for f in read_facts(request.values["passage"])}
    stated = {value for _, value in facts}
    claimed = {value for _, value in _values_in(request.values.get("answer", ""))}
    unsupported = sorted(claimed - stated)
    if not claimed & stated:
        return {"supported": False, "reason": "The answer states none of the passage's facts."}
    if unsupported:
        return {"supported": False, "reason": _fit(f"The passage does not state {', '.join(unsupported)}.", 200)}
    return {"supported": True, "reason": "Every fact of the answer is stated in the passage."}


def write_verdict(request: Request, rng: random.Random) -> dict[str, Any]:
    facts = read_facts(request.values["reference"]) or read_facts(request.values["passage"])
    reference = {(f.attribute, f.value) for f in facts} & _values_in(request.values["reference"]) or \
        _values_in(request.values["reference"])
    if not reference:
        return {"verdict": "incorrect", "reason": "The reference answer states no fact the judge can check."}
    answer = _values_in(request.values.get("answer", ""))
    right = reference & answer
    wrong = {(a, v) for a, v in answer if a in {attr for attr, _ in reference}} - reference
    if right and not wrong:
        return {"verdict": "correct", "reason": "It states the reference answer's fact."}
    if right:
        return {"verdict": "partial", "reason": "It states the right fact beside a wrong one."}
    return {"verdict": "incorrect", "reason": "It does not state the reference answer's fact."}


def _filled(schema: dict[str, Any]) -> Any:
    """The smallest value of ``schema``'s shape, its strings saying what this teacher is."""
    kind = schema.get("type")
    if kind == "object":
        return {key: _filled(child) for key, child in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [_filled(schema.get("items") or {}) for _ in range(max(1, int(schema.get("minItems", 1))))]
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        return 0
    if "enum" in schema:
        return schema["enum"][0]
    return _fit(PROBE_TEXT, schema.get("maxLength"))


def write_probe(request: Request, rng: random.Random) -> dict[str, Any]:
    """A request with no document (a teacher test): a reply in the asked shape, saying what this teacher is."""
    data = _filled(request.schema or {"type": "object", "properties": {"reply": {"type": "string"}}})
    return data if isinstance(data, dict) else {"reply": data}


WRITERS: dict[str, Writer] = {
    "qa": write_qa, "focal_question": write_focal_question, "focal_rewrite": write_focal_rewrite,
    "rephrase": write_rephrase, "entigraph_entities": write_entities, "entigraph_relation": write_relation,
    "eval_mc": write_mc, "eval_open": write_open, "grounding_judge": write_grounding, JUDGE: write_verdict,
    PROBE: write_probe,
}


class LabTeacher(Teacher):
    """A deterministic teacher that writes every recipe's reply from the lab documents' facts."""

    name = "lab-teacher"
    concurrency = 1

    def complete(self, messages: list[dict[str, str]], schema: dict[str, Any] | None = None, max_tokens: int = 512,
                 *, temperature: float | None = None, seed: int | None = None) -> TeacherReply:
        started = time.perf_counter()
        request = recognise(messages, schema)
        key = json.dumps([messages, seed], sort_keys=True).encode()
        data = WRITERS[request.prompt](request, random.Random(hashlib.sha256(key).hexdigest()))
        text = json.dumps(data, ensure_ascii=False)
        return TeacherReply(text, data, prompt_tokens=sum(estimate_tokens(m["content"]) for m in messages),
                            completion_tokens=estimate_tokens(text), seconds=time.perf_counter() - started)
