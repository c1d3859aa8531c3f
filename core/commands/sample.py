"""``doctune sample``: the sample project the window offers, from the bundled documents (``--offline-check``:
on tiny built-in models, no download)."""
from __future__ import annotations

from pathlib import Path

from doctune.core.commands import CommandContext, add_command
from doctune.core.tiny import Family

SAMPLE_STUDENT = "HuggingFaceTB/SmolLM2-360M-Instruct"
SAMPLE_TEACHER_REPO = "Qwen/Qwen2.5-1.5B-Instruct-GGUF"


SAMPLE_TEACHER_FILE = "qwen2.5-1.5b-instruct-q4_k_m.gguf"
TINY_FAMILY: Family = "qwen2"


def register(sub) -> None:
    parser = add_command(sub, "sample", cmd_sample,
                         "Create the sample project from the bundled documents, with the recommended small models.")
    parser.add_argument("dir", metavar="DIR", help="folder to create")
    parser.add_argument("--offline-check", action="store_true",
                        help="use tiny built-in models instead (no download): checks the machinery; answers are meaningless")


def cmd_sample(ctx: CommandContext) -> int:
    from doctune.core.project import Project
    from doctune.core.resources import resource_path

    project = Project.create(ctx.args.dir, name="DocTune sample (offline check)" if ctx.args.offline_check else "DocTune sample")
    docs = resource_path("sample/docs")  # read in place: ingestion skips files inside the project folder
    if ctx.args.offline_check:
        _use_tiny_models(project, ctx)
    else:
        project.config.student.model = SAMPLE_STUDENT
        project.config.teacher.kind = "local"
        project.config.teacher.hf_repo = SAMPLE_TEACHER_REPO
        project.config.teacher.hf_file = SAMPLE_TEACHER_FILE
    project.save()
    from doctune.core.ingest import IngestParams, run

    result = run(IngestParams(project_dir=project.root, paths=[docs]), events=ctx.events.child("ingest"), cancel=ctx.cancel)
    ctx.events.done(f"Created the sample project in {project.root} ({result.summary()})", project=str(project.root))
    return 0


def _use_tiny_models(project, ctx: CommandContext) -> None:
    """Tiny built-in student and teacher: every step runs offline in minutes; the answers mean nothing."""
    from doctune.core.export.gguf import write_gguf
    from doctune.core.tiny import ensure_tiny_model

    models = project.cache_dir / "tiny-models"
    ctx.events.log("Building the tiny built-in models (a machinery check: their answers are meaningless)")
    student = ensure_tiny_model(TINY_FAMILY, models)
    teacher = models / "tiny-teacher-f16.gguf"
    if not teacher.exists():
        write_gguf(ensure_tiny_model(TINY_FAMILY, models, seed=1), teacher, events=ctx.events.child("export"),
                   cancel=ctx.cancel)
    project.config.student.model = str(student)
    project.config.teacher.kind = "local"
    project.config.teacher.model_path = str(Path(teacher))
    random_teacher_settings(project.config)
    project.config.privacy.offline = True


def random_teacher_settings(config) -> None:
    """The offline check's settings for its untrained teacher (tests of tiny teachers use the same): a random
    teacher writes every string to its length limit, so small limits keep its calls short and complete; and its
    words come from nowhere, so grounding would filter every item (the run stopped at Train with 96 of 100 items
    dropped)."""
    config.teacher.n_ctx = 2048  # the judge reads a passage and an answer: 1024 overflowed
    config.teacher.max_tokens = 512
    synth = config.synth
    synth.per_chunk = 1
    synth.max_question_chars, synth.max_answer_chars = 60, 120
    synth.max_document_chars, synth.min_document_chars = 300, 20
    synth.grounding = "off"
