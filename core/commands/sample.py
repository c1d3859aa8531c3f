"""``doctune sample``: the sample project the window offers, from the bundled documents (``--offline-check``:
the knowledge lab's documents, teacher and reader, built on this computer: no download)."""
from __future__ import annotations

from pathlib import Path

from doctune.core.commands import CommandContext, add_command

SAMPLE_STUDENT = "HuggingFaceTB/SmolLM2-360M-Instruct"
SAMPLE_TEACHER_REPO = "Qwen/Qwen2.5-1.5B-Instruct-GGUF"
SAMPLE_TEACHER_FILE = "qwen2.5-1.5b-instruct-q4_k_m.gguf"


def register(sub) -> None:
    parser = add_command(sub, "sample", cmd_sample,
                         "Create the sample project from the bundled documents, with the recommended small models.")
    parser.add_argument("dir", metavar="DIR", help="folder to create")
    parser.add_argument("--offline-check", action="store_true",
                        help="use the knowledge lab instead (no download): a small model trained here on a made-up "
                             "world, its documents and its teacher")


def cmd_sample(ctx: CommandContext) -> int:
    from doctune.core.project import Project
    from doctune.core.resources import resource_path

    reader = _lab_reader(ctx) if ctx.args.offline_check else None  # before the project: a cancel leaves none
    project = Project.create(ctx.args.dir, name="DocTune sample (offline check)" if ctx.args.offline_check else "DocTune sample")
    docs = resource_path("sample/docs")  # read in place: ingestion skips files inside the project folder
    if reader is not None:
        from doctune.core.lab import offline

        offline.configure(project, reader)
        docs = offline.documents_folder()
    else:
        project.config.student.model = SAMPLE_STUDENT
        project.config.teacher.kind = "local"
        project.config.teacher.hf_repo = SAMPLE_TEACHER_REPO
        project.config.teacher.hf_file = SAMPLE_TEACHER_FILE
    project.save()
    from doctune.core.ingest import IngestParams
    from doctune.core.ingest import run as ingest
    from doctune.core.rag import IndexParams
    from doctune.core.rag import run as index

    result = ingest(IngestParams(project_dir=project.root, paths=[docs]), events=ctx.events.child("ingest"),
                    cancel=ctx.cancel)
    index(IndexParams(project_dir=project.root), events=ctx.events.child("index"), cancel=ctx.cancel)
    ctx.events.done(f"Created the sample project in {project.root} ({result.summary()}, indexed for retrieval)",
                    project=str(project.root))
    return 0


def _lab_reader(ctx: CommandContext) -> Path:
    """The knowledge lab's reader, built once per computer with progress (cancellable)."""
    from doctune.core.lab import offline

    ctx.events.log("Preparing the lab's reader: a small model trained on this computer on a made-up world "
                   "(once per computer, about 25 minutes on two cores)")
    tracker: list = []

    def report(progress: dict) -> None:
        if not tracker:
            tracker.append(ctx.events.tracker(progress["steps"], unit="steps", stage="sample.reader"))
        tracker[0].update(progress["step"], f"loss {progress['loss']}")
        ctx.cancel.raise_if_cancelled()

    return offline.reader_folder(report)
