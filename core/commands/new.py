"""``doctune new``."""
from __future__ import annotations

from doctune.core.commands import CommandContext, add_command


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

