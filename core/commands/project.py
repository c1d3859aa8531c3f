"""``doctune new`` and the guided entry shown by a bare ``doctune``."""
from __future__ import annotations

from doctune.core.cli import CommandContext, add_command, build_parser


def register(sub) -> None:
    parser = add_command(sub, "new", cmd_new, "Create a project folder with default settings.")
    parser.add_argument("dir", metavar="DIR", help="folder to create (may exist and be empty)")
    parser.add_argument("--name", help="display name (default: the folder's name)")


def cmd_new(ctx: CommandContext) -> int:
    from doctune.core.project import Project

    project = Project.create(ctx.args.dir, name=ctx.args.name)
    ctx.events.done(f"Created project '{project.config.project.name}' in {project.root}", project=str(project.root))
    if not ctx.jsonl:
        ctx.print(f"Next: doctune add <files or folders> -p {project.root}")
    return 0


def guided_entry(ctx: CommandContext) -> int:
    """What a bare ``doctune`` shows: what to do next, and the project's state if there is one."""
    from doctune.core.project import Project, ProjectError

    ctx.print("[bold]DocTune[/bold] — teach a small local model your documents, and measure whether it beats RAG.\n")
    try:
        project = Project.locate(getattr(ctx.args, "project", None))
    except ProjectError:
        ctx.print("No project here. Start one with:\n  doctune new DIR\n  doctune add FILES... -p DIR\n")
        build_parser().print_help()
        return 0
    ctx.print(f"Project: {project.config.project.name} ({project.root})")
    ctx.print("Run 'doctune status' for its documents, or 'doctune --help' for every command.")
    return 0
