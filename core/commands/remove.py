"""``doctune remove``: documents and their chunks out of the project."""
from __future__ import annotations

import os

from doctune.core.commands import CommandContext, UsageError, add_command
from doctune.core.exitcodes import ExitCode


def register(sub) -> None:
    remove = add_command(sub, "remove", cmd_remove, "Remove documents and their chunks from the project.")
    remove.add_argument("docs", nargs="*", metavar="DOC", help="a document's path, file name, id (or id prefix), or a folder")
    remove.add_argument("--all", action="store_true", help="remove every document of the project")
    remove.add_argument("--yes", action="store_true",
                        help="confirm that a folder which holds every document of the project is removed whole")


def _matches(arg: str, rows: list[dict]) -> list[dict]:
    """Documents named by a path, a folder, a file name, or an id (prefix of 8+ characters)."""
    absolute = os.path.abspath(arg)
    by_path = [row for row in rows if row["path"] == absolute]
    if by_path:
        return by_path
    if os.path.isdir(absolute):
        prefix = absolute.rstrip(os.sep) + os.sep
        return [row for row in rows if row["path"].startswith(prefix)]
    by_name = [row for row in rows if row["name"] == arg]
    if by_name:
        return by_name
    if len(arg) >= 8:
        return [row for row in rows if row["id"].startswith(arg.lower())]
    return []


def cmd_remove(ctx: CommandContext) -> int:
    from doctune.core.documents_status import changing_documents

    with changing_documents(ctx.project()):
        return _remove(ctx)


def _remove(ctx: CommandContext) -> int:
    from doctune.core.store import Store, describe_reclaimed

    store = Store(ctx.project())
    rows = store.document_rows()
    if ctx.args.all and ctx.args.docs:
        raise UsageError("Give either documents to remove or --all, not both (nothing was removed).")
    if not ctx.args.all and not ctx.args.docs:
        raise UsageError("Name the documents to remove (path, file name, id or folder), "
                         "or pass --all to remove every document.")
    chosen: dict[str, dict] = {row["id"]: row for row in rows} if ctx.args.all else {}
    for arg in ctx.args.docs:
        found = _matches(arg, rows)
        if not found:
            raise UsageError(f"No document matches '{arg}' (nothing was removed); see 'doctune status' for the list.")
        if len(found) > 1 and not os.path.isdir(arg):
            listed = "\n  ".join(f"{row['id'][:12]}  {row['path']}" for row in found)
            raise UsageError(f"'{arg}' matches {len(found)} documents (nothing was removed); name one by path or id:\n  {listed}")
        if len(found) == len(rows) > 1 and os.path.isdir(arg) and not ctx.args.yes:
            raise UsageError(f"The folder '{arg}' holds every document of the project ({len(rows)}); nothing was "
                             "removed. Pass --yes to remove them all (or --all), or name a narrower folder.")
        chosen.update({row["id"]: row for row in found})
    store.delete_documents(chosen)
    for row in chosen.values():
        ctx.events.log(f"Removed {row['path']} ({row['chunks'] or 0} chunks)", path=row["path"])
    freed = store.reclaim()
    ctx.events.done(f"Removed {len(chosen)} document(s); {describe_reclaimed(freed)} of disk space given back.",
                    removed=len(chosen), reclaimed_bytes=freed)
    return ExitCode.OK
