"""Does a student tuned by DocTune know new documents? The knowledge lab's scoreboard.

The lab's "user documents" are new entities of the lab world (never in the
reader's pretraining), one Markdown file each. DocTune's real pipeline runs on
them in a temporary project — ingest → index → synthesize (lab teacher) →
held-out questions → train → export → evaluate — with the lab reader as the
student, built on first use and cached (``doctune.core.lab.reader``). The
evaluation scores the four systems and the exported Q8_0 file on held-out
multiple-choice questions (phrasings never used for training), by DocTune's
headline metric (the option's likelihood), with 95% intervals.

``tuned`` is the F16 GGUF, which export verifies against the transformers
model (top-1 agreement ≥ 99%), so ``tuned_q8_0`` against it is the
quantisation's cost.

Targets (issue 13): base ≤ 35%, base + RAG ≥ 80%, tuned ≥ 60% and ≥ base + 30
points, tuned + RAG ≥ base + RAG, Q8_0 within 3 points of tuned.

Usage: ``python bench/knowledge.py --quick`` (the default point only),
``python bench/knowledge.py --points distill`` (the default and the named
points), ``--points qa+focal-16x,qa-4x`` (sweep points), or with no argument
the full sweep: each recipe mix (``MIXES``) at 1, 4, 16 and 64 synthetic tokens
per source token, then epochs, LoRA rank and replay at one amount, on
``SWEEP_ENTITIES`` documents at the reader's own training settings (what its
folder recommends, so a new project's); it prints a table
and draws closed-book accuracy against the amount (``--plot``). The last line
is JSON: the default point's figures, and with several points each one's
accuracies, amount and training seconds under ``points``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from doctune.core.lab import offline

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"base_max": 0.35, "base_rag_min": 0.80, "tuned_min": 0.60, "tuned_over_base_min": 0.30,
           "q8_0_within": 0.03}
N_ENTITIES = 30
WORLD_SEED = 2

DEFAULT_POINT: dict[str, Any] = {"name": "default", "synth": {}, "train": {}}
"""The settings a new project gets with the lab reader as its student: DocTune's defaults, with the training
settings the reader's folder recommends (``doctune.core.students``); a sweep point overrides [synth] / [train]."""
OBJECTIVE_POINTS: list[dict[str, Any]] = [
    {"name": "distill", "synth": {}, "train": {"objective": "distill"}},
    {"name": "mix-objective", "synth": {}, "train": {"objective": "mix"}},
]
"""The training objective at the default point: context distillation against next-token loss (same items, steps
and optimizer, so the extra teacher forward is the only extra compute, shown in each point's train seconds)."""

AMOUNTS: tuple[float, ...] = (1.0, 4.0, 16.0, 64.0)
"""Synthetic tokens per source token the amount axis asks for (the plot uses what the filters let through)."""
MIXES: dict[str, tuple[str, ...]] = {
    "qa": ("qa",),
    "qa+focal": ("qa", "focal"),
    "qa+focal+entigraph": ("qa", "focal", "entigraph"),
    "qa+focal+entigraph+rephrase": ("qa", "focal", "entigraph", "rephrase"),
}
"""The recipe mixes, each adding one recipe to the last; the amount is shared equally among a mix's recipes."""
AXIS_MIX, AXIS_AMOUNT = "qa+focal", 16.0
"""Where the other axes (epochs, LoRA rank, replay) are measured: DocTune's default recipes at a middle amount."""
SWEEP_ENTITIES = 12
"""Documents of a sweep point (the default point has ``N_ENTITIES``): fewer, so the whole sweep fits in about an
hour on two cores; its intervals are wider, so read the lines, not single points."""


def amount_point(mix: str, amount: float, sizes: dict[str, float], **train: Any) -> dict[str, Any]:
    """A sweep point at ``amount`` synthetic tokens per source token of recipes ``mix``, at the reader's training
    settings (``train`` overrides them). Items per chunk come from ``sizes``: what one item of each recipe holds as
    the lab teacher writes it, per source token of its chunk (``measure_item_sizes``); DocTune's own planner sizes
    items from the schemas' limits, which the lab teacher's short replies stay far below."""
    recipes = MIXES[mix]
    counts = {recipe: max(1, round(amount / len(recipes) / sizes[recipe])) for recipe in recipes}
    name = f"{mix}-{amount:g}x" + "".join(f"-{key}-{value:g}" for key, value in sorted(train.items()))
    return {"name": name, "mix": mix, "amount": amount, "axis": sorted(train) or ["amount"],
            "reading": mix == AXIS_MIX and amount == AXIS_AMOUNT,
            "synth": {"per_chunk": 1, "amplification": 0.0, "recipes": counts},
            "train": train}


def axis_points(sizes: dict[str, float]) -> list[dict[str, Any]]:
    """Every point of the full sweep: each mix at each amount, then epochs, rank and replay at one amount."""
    points = [amount_point(mix, amount, sizes) for mix in MIXES for amount in AMOUNTS]
    points += [amount_point(AXIS_MIX, AXIS_AMOUNT, sizes, epochs=epochs) for epochs in (10.0, 30.0)
               if epochs != offline.TRAIN["epochs"]]
    points += [amount_point(AXIS_MIX, AXIS_AMOUNT, sizes, lora_rank=16, lora_alpha=32.0)]
    points += [amount_point(AXIS_MIX, AXIS_AMOUNT, sizes, replay_fraction=0.1)]
    return points


def _open_book(name: str, fraction: float, others: int, source_first: float) -> dict[str, Any]:
    return {"name": name, "synth": {}, "train": {"open_book_fraction": fraction, "open_book_distractors": others,
                                                 "open_book_source_first": source_first}}


OPEN_BOOK_POINTS: list[dict[str, Any]] = [
    *(_open_book(f"open-book-{fraction:g}", fraction, 3, 1.0) for fraction in (0.0, 0.1, 0.25)),
    *(_open_book(f"open-book-first-0.25-{others}", 0.25, others, 1.0) for others in (2, 3)),
    _open_book("open-book-shuffled", 0.5, 3, 0.0),
    _open_book("open-book-shuffled-0.25-2", 0.25, 2, 0.0),
]
"""Open-book training at the default point (where the reader recommends half of the question-answer items, each
with its passage first among three of other documents, as DocTune's search shows a question's own passage): no
item, a tenth or a quarter of them; a quarter among two or three; and the passage at a random place among the
others, as RAFT shows it (half among three, and the quarter among two the reader recommended before). Tuned + RAG
against base + RAG, and what each costs in training seconds."""

MLP = ["gate_proj", "up_proj", "down_proj"]
LORA_MODULE_POINTS: list[dict[str, Any]] = [
    {"name": "lora-mlp", "synth": {}, "train": {"target_modules": MLP}},
    *({"name": f"lora-mlp-{rate:g}", "synth": {}, "train": {"target_modules": MLP, "learning_rate": rate}}
      for rate in (5e-3, 8e-3)),
    {"name": "lora-o-mlp", "synth": {}, "train": {"target_modules": ["o_proj", *MLP]}},
    {"name": "lora-vo-mlp", "synth": {}, "train": {"target_modules": ["v_proj", "o_proj", *MLP]}},
]
"""Which layers the adapter changes, at the default point (where the reader recommends all linear layers): the
feed-forward layers alone, or with the attention's output (and value) projections, leaving the queries and keys
that decide which passage the reader looks at as the base reader had them (tuned + RAG against base + RAG)."""

SWEEP: list[dict[str, Any]] = [DEFAULT_POINT, *OBJECTIVE_POINTS, *OPEN_BOOK_POINTS, *LORA_MODULE_POINTS]
"""The named points (``--points``); the full sweep (no argument) adds ``axis_points``."""

MEASUREMENT = {"eval_mc_per_chunk": 3, "eval_open_per_chunk": 0}
"""How the lab measures (not how DocTune trains): three held-out multiple-choice questions per document, so the
intervals are narrow enough to read; no open questions (they need the judge and long answers, and say less)."""


def cache_root() -> Path:
    """The tests' cache of tiny models (git-ignored), where the reader is built once per machine."""
    return ROOT / "tests" / ".artifacts" / "tiny"


def make_project(root: Path, student: Path, point: dict[str, Any]):
    from doctune.core.project import Project
    from doctune.core.students import choose_student

    project = Project.create(root / "project", name=f"Knowledge lab ({point['name']})")
    config = project.config
    config.teacher.kind = "lab"
    choose_student(config, str(student))
    for name, value in MEASUREMENT.items():
        setattr(config.synth, name, value)
    for section in ("synth", "train"):
        for name, value in point[section].items():
            setattr(getattr(config, section), name, value)
    config.export.formats = ["f16", "q8_0"]
    config.rag.gguf_format = "f16"
    project.save()
    return project


def run_point(point: dict[str, Any], student: Path, work: Path, *, seed: int = WORLD_SEED,
              n_entities: int = N_ENTITIES) -> dict[str, Any]:
    """One full pipeline run on new documents; the scores of base, base+rag, tuned, tuned+rag and the Q8_0 file."""
    from doctune.core.evaluate.step import EvalParams
    from doctune.core.evaluate.step import run as evaluate
    from doctune.core.events import CancelToken, Events
    from doctune.core.export import ready_gguf
    from doctune.core.lab.offline import write_documents
    from doctune.core.pipeline import PipelineParams
    from doctune.core.pipeline import run as pipeline

    docs = work / "docs"
    write_documents(docs, seed, n_entities)
    project = make_project(work, student, point)
    events, cancel = Events(_progress), CancelToken()
    started = time.perf_counter()
    steps = pipeline(PipelineParams(project_dir=project.root, add=[docs], until="export"), events=events, cancel=cancel)
    q8_0 = ready_gguf(project, fmt="q8_0")
    systems = ["base", "base+rag", "tuned", "tuned+rag"] + ([str(q8_0)] if q8_0 else [])
    evaluated = time.perf_counter()
    result = evaluate(EvalParams(project_dir=project.root, systems=systems, judge=False), events=events, cancel=cancel)
    evaluate_s = round(time.perf_counter() - evaluated, 1)
    scores = {name.replace("+rag", "_rag").replace(str(q8_0), "tuned_q8_0"): figures["mc_likelihood"]
              for name, figures in result.summary["scores"].items()}
    outcomes = steps.as_dict() + [{"step": "evaluate", "status": "done", "seconds": evaluate_s,
                                   "note": f"{len(systems)} systems"}]
    outcome = {"point": point["name"], "scores": scores, "steps": outcomes, **achieved_amount(project),
               "settings": training_settings(project), "seconds": round(time.perf_counter() - started, 1)}
    f16 = ready_gguf(project, fmt="f16")  # its folder holds the merged model (the Q8_0 file may fail its check)
    if point.get("reading") and f16 is not None:
        outcome["reading"] = reading_after(f16)
    return outcome


SHOWN_SETTINGS = {"synth": ("amplification", "per_chunk", "recipes"),
                  "train": ("objective", "open_book_fraction", "open_book_distractors", "open_book_source_first",
                            "learning_rate", "lora_rank", "lora_alpha", "epochs", "replay_fraction")}


def training_settings(project) -> dict[str, Any]:
    """The settings the point ran with, as the project held them (the student's recommendations included)."""
    config = project.config
    return {name: getattr(getattr(config, section), name) for section, names in SHOWN_SETTINGS.items()
            for name in names}


def achieved_amount(project) -> dict[str, Any]:
    """What the filters let through: training items, and synthetic tokens per source token over all documents
    (as synthesis's coverage report counts them)."""
    from doctune.core.items import load_training_items
    from doctune.core.store import list_chunks
    from doctune.core.synth.coverage import document_coverage

    rows = document_coverage(load_training_items(project), list_chunks(project))
    source = sum(row.source_tokens for row in rows)
    return {"items": sum(row.items for row in rows),
            "amplification": round(sum(row.synthetic_tokens for row in rows) / source, 2) if source else 0.0}


def reading_after(exported: Path) -> float:
    """The tuned reader's reading on other new entities (DocTune's RAG prompt, multiple choice): what tuning on the
    user's documents leaves of the reader's general skill, from the merged model the export wrote."""
    from doctune.core.lab.reader import reading_check
    from doctune.core.records.layout import ExportLayout

    return reading_check(ExportLayout(exported.parent).merged)["read"]


def measure_item_sizes(student: Path, work: Path, *, seed: int = WORLD_SEED, n_entities: int = SWEEP_ENTITIES,
                       count: int = 4) -> dict[str, float]:
    """Synthetic tokens per source token that one item per chunk of each recipe adds, as the lab teacher writes
    them on the sweep's documents (synthesis only: ``count`` items per chunk of every recipe, no training)."""
    from doctune.core.events import CancelToken, Events
    from doctune.core.items import load_training_items
    from doctune.core.lab.offline import write_documents
    from doctune.core.pipeline import PipelineParams
    from doctune.core.pipeline import run as pipeline
    from doctune.core.store import list_chunks
    from doctune.core.synth.coverage import item_tokens

    recipes = MIXES[list(MIXES)[-1]]
    docs = work / "docs"
    write_documents(docs, seed, n_entities)
    point = {"name": "item sizes", "synth": {"per_chunk": count, "amplification": 0.0,
                                             "recipes": dict.fromkeys(recipes, 1.0)}, "train": {}}
    project = make_project(work, student, point)
    pipeline(PipelineParams(project_dir=project.root, add=[docs], until="synthesize"), events=Events(_progress),
             cancel=CancelToken())
    source = sum(int(chunk.get("n_tokens") or 0) for chunk in list_chunks(project))
    tokens = dict.fromkeys(recipes, 0)
    for item in load_training_items(project):
        tokens[item.recipe] = tokens.get(item.recipe, 0) + item_tokens(item)
    missing = [recipe for recipe in recipes if not tokens[recipe]]
    if missing or not source:
        raise SystemExit(f"The lab teacher wrote no items of {', '.join(missing) or 'any recipe'}; see the log above.")
    return {recipe: tokens[recipe] / count / source for recipe in recipes}


def _progress(event: dict[str, Any]) -> None:
    """Steps' logs, warnings and errors on stderr, so a long run shows where it is (stdout keeps the results)."""
    if event.get("event") in ("log", "warning", "error", "done"):
        print(f"[{event.get('stage', '')}] {event.get('message', '')}", file=sys.stderr, flush=True)


def verdict(scores: dict[str, dict[str, Any]]) -> dict[str, bool]:
    accuracy = {name: figures.get("accuracy") or 0.0 for name, figures in scores.items()}
    base, base_rag, tuned = accuracy.get("base", 0.0), accuracy.get("base_rag", 0.0), accuracy.get("tuned", 0.0)
    return {
        "base_at_chance": base <= TARGETS["base_max"],
        "base_rag_reads": base_rag >= TARGETS["base_rag_min"],
        "tuned_knows": tuned >= TARGETS["tuned_min"] and tuned >= base + TARGETS["tuned_over_base_min"],
        "tuned_rag_not_worse": accuracy.get("tuned_rag", 0.0) >= base_rag,
        "q8_0_close": abs(accuracy.get("tuned_q8_0", 0.0) - tuned) <= TARGETS["q8_0_within"],
    }


def print_scoreboard(outcome: dict[str, Any]) -> None:
    print(f"\nPoint: {outcome['point']}  ({outcome['seconds']} s)")
    print(f"{'system':<12} {'accuracy':>8}  {'95% interval':<16} n")
    for name, figures in outcome["scores"].items():
        low, high = figures.get("ci95") or (None, None)
        interval = f"[{low:.2f}, {high:.2f}]" if low is not None else "-"
        print(f"{name:<12} {figures.get('accuracy') or 0.0:>8.2f}  {interval:<16} {figures.get('n')}")
    for step in outcome["steps"]:
        print(f"  {step['step']:<11} {step['status']:<8} {step['seconds']:>7.1f} s  {step['note']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Run the default point only.")
    parser.add_argument("--points", help="Comma-separated names of points to run beside the default (default: the "
                                         "full sweep). Named points: " + ", ".join(p["name"] for p in SWEEP[1:])
                                         + "; sweep points are named like qa+focal-16x or qa+focal-16x-epochs-3.")
    parser.add_argument("--entities", type=int, default=N_ENTITIES, help="New entities (documents) of the default "
                                                                          "and named points.")
    parser.add_argument("--sweep-entities", type=int, default=SWEEP_ENTITIES, help="New entities of sweep points.")
    parser.add_argument("--reader", type=Path, help="A built reader folder (default: build or reuse the cached one).")
    parser.add_argument("--plot", type=Path, default=ROOT / "bench" / "results" / "knowledge-sweep.png",
                        help="Where the sweep's chart is drawn (when amount points ran).")
    args = parser.parse_args(argv)

    from doctune.core.lab.reader import ensure_reader

    started = time.perf_counter()
    student = offline.with_recommended_settings(
        args.reader or ensure_reader(cache_root(), report=lambda r: print(json.dumps(r), file=sys.stderr)))
    reader_s = round(time.perf_counter() - started, 1)
    points = [DEFAULT_POINT] if args.quick else _chosen(args.points, student, args.sweep_entities)
    outcomes = []
    for point in points:
        n_entities = args.sweep_entities if "mix" in point else args.entities
        with tempfile.TemporaryDirectory(prefix="doctune-bench-knowledge-") as tmp:
            outcomes.append(run_point(point, student, Path(tmp), n_entities=n_entities) | {
                "mix": point.get("mix"), "amount": point.get("amount"), "axis": point.get("axis"),
                "entities": n_entities})
        print_scoreboard(outcomes[-1])
    default = outcomes[0]
    figures: dict[str, Any] = {"bench": "knowledge", "point": default["point"], "entities": args.entities}
    figures |= {name: figures_["accuracy"] for name, figures_ in default["scores"].items()}
    figures |= {f"{name}_ci95": figures_.get("ci95") for name, figures_ in default["scores"].items()}
    checks = verdict(default["scores"])
    figures |= {"settings": default["settings"], "amplification": default["amplification"],
                "items": default["items"]}
    figures |= {"targets": TARGETS, "checks": checks, "meets_target": all(checks.values()),
                "reader_s": reader_s, "pipeline_s": default["seconds"],
                "steps_s": {step["step"]: step["seconds"] for step in default["steps"]}}
    if len(outcomes) > 1:
        figures["points"] = {outcome["point"]: point_figures(outcome) for outcome in outcomes}
        print_sweep(outcomes)
        swept = [outcome for outcome in outcomes if outcome.get("axis") == ["amount"]]
        if swept:
            draw_sweep(swept, args.plot)
            figures["plot"] = str(args.plot)
    print(json.dumps(figures))


def point_figures(outcome: dict[str, Any]) -> dict[str, Any]:
    """A point's accuracies, amount and training seconds, for the JSON line."""
    figures = {name: scores["accuracy"] for name, scores in outcome["scores"].items()}
    figures |= {key: outcome[key] for key in ("mix", "amount", "amplification", "items", "reading", "entities")
                if outcome.get(key) is not None}
    figures["train_s"] = next((step["seconds"] for step in outcome["steps"] if step["step"] == "train"), None)
    return figures


def print_sweep(outcomes: list[dict[str, Any]]) -> None:
    """Every point in one table: what it asked, what the filters let through, what each system scored."""
    print("\nSweep (held-out multiple choice; amounts in synthetic tokens per source token)")
    header = f"{'point':<40} {'asked':>6} {'got':>6} {'items':>6} {'train s':>8} {'base':>5} {'+rag':>5} " \
             f"{'tuned':>6} {'+rag':>5} {'q8_0':>5} {'reads':>6}"
    print(header)
    for outcome in outcomes:
        figures = point_figures(outcome)

        def cell(key: str, width: int, figures: dict[str, Any] = figures) -> str:
            value = figures.get(key)
            return f"{value:>{width}.2f}" if isinstance(value, float) else f"{'-' if value is None else value:>{width}}"

        print(f"{outcome['point']:<40} {cell('amount', 6)} {cell('amplification', 6)} {cell('items', 6)} "
              f"{cell('train_s', 8)} {cell('base', 5)} {cell('base_rag', 5)} {cell('tuned', 6)} "
              f"{cell('tuned_rag', 5)} {cell('tuned_q8_0', 5)} {cell('reading', 6)}")


def draw_sweep(outcomes: list[dict[str, Any]], path: Path) -> None:
    """Closed-book accuracy against the synthetic tokens per source token the filters let through, a line per
    recipe mix, with the base reader closed book and with retrieval as flat lines (same documents)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5), dpi=120)
    for mix in dict.fromkeys(outcome["mix"] for outcome in outcomes):
        line = sorted((o["amplification"], o["scores"]["tuned"]["accuracy"]) for o in outcomes if o["mix"] == mix)
        axes.plot([x for x, _ in line], [y for _, y in line], marker="o", label=f"tuned: {mix}")
    for system, label, style in (("base", "base, closed book", ":"), ("base_rag", "base + retrieval", "--")):
        level = sum(o["scores"][system]["accuracy"] for o in outcomes) / len(outcomes)
        axes.axhline(level, color="grey", linestyle=style, label=f"{label} ({level:.0%})")
    axes.set_xscale("log", base=2)
    axes.set_xlabel("synthetic tokens per source token (after filters)")
    axes.set_ylabel("held-out multiple choice, closed book")
    axes.set_ylim(0, 1)
    axes.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    axes.set_title(f"Knowledge lab: {outcomes[0]['entities']} new documents, lab reader, its training settings")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def _chosen(names: str | None, student: Path, sweep_entities: int) -> list[dict[str, Any]]:
    """The points named in ``names`` (the full sweep when None: the default, then every ``axis_points`` point),
    the default first: the JSON line's figures are its."""
    wanted = [name.strip() for name in (names or "").split(",") if name.strip()]
    named = {point["name"]: point for point in SWEEP}
    if wanted and all(name in named for name in wanted):
        return [DEFAULT_POINT] + [named[name] for name in wanted if name != "default"]
    with tempfile.TemporaryDirectory(prefix="doctune-bench-knowledge-sizes-") as tmp:
        sizes = measure_item_sizes(student, Path(tmp), n_entities=sweep_entities)
    print(f"Synthetic tokens per source token, per item per chunk: {json.dumps(sizes)}", file=sys.stderr)
    swept = {point["name"]: point for point in axis_points(sizes)}
    if not wanted:
        return [DEFAULT_POINT, *swept.values()]
    unknown = [name for name in wanted if name not in named and name not in swept]
    if unknown:
        raise SystemExit(f"Unknown point(s): {', '.join(unknown)}; named points: {', '.join(named)}; sweep points: "
                         f"{', '.join(swept)}")
    return [DEFAULT_POINT] + [named.get(name) or swept[name] for name in wanted if name != "default"]


if __name__ == "__main__":
    main()
