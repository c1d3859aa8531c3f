"""``doctune teacher test``: one small structured request to the configured teacher; ``teacher set-key``."""
from __future__ import annotations

import time

from doctune.core.cli import CommandContext, UsageError, add_command

PROBE_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 40},
                   "fact": {"type": "string", "minLength": 1, "maxLength": 160}},
    "required": ["city", "fact"],
}
PROBE_MESSAGES = [
    {"role": "system", "content": "You reply with a JSON object only."},
    {"role": "user", "content": 'Name a capital city and one fact about it, as JSON: {"city": "...", "fact": "..."}'},
]


def register(sub) -> None:
    parser = add_command(sub, "teacher", cmd_teacher,
                         "Check the configured teacher (latency, tokens/s) or store its API key in the OS keyring.")
    parser.add_argument("action", choices=["test", "set-key"],
                        help="test: one small structured request; set-key: read a key from stdin into the keyring")


def cmd_teacher(ctx: CommandContext) -> int:
    if ctx.args.action == "set-key":
        return _set_key(ctx)
    from doctune.core.synth.pipeline import save_speed
    from doctune.core.teachers import open_teacher

    project = ctx.project()
    started = time.perf_counter()
    teacher = open_teacher(project, events=ctx.events)
    load_s = time.perf_counter() - started
    try:
        reply = teacher.complete(PROBE_MESSAGES, schema=PROBE_SCHEMA, max_tokens=128, temperature=0.0)
    finally:
        teacher.close()
    tokens_per_s = reply.completion_tokens / reply.seconds if reply.seconds > 0 else 0.0
    valid = isinstance(reply.data, dict) and all(key in reply.data for key in PROBE_SCHEMA["required"])
    save_speed(project, teacher.name, reply.completion_tokens, reply.seconds, 1)
    ctx.events.metric(latency_s=round(reply.seconds, 3), tokens_per_s=round(tokens_per_s, 1),
                      completion_tokens=reply.completion_tokens, prompt_tokens=reply.prompt_tokens,
                      load_s=round(load_s, 3))
    ctx.events.done(f"{teacher.name}: {reply.seconds:.2f} s, {reply.completion_tokens} tokens, "
                    f"{tokens_per_s:.1f} tokens/s, " + ("valid JSON" if valid else "no valid JSON object"),
                    teacher=teacher.name, latency_s=reply.seconds, tokens_per_s=tokens_per_s, valid_json=valid)
    if not ctx.jsonl:
        ctx.print(f"Reply: {reply.text[:200]}")
    return 0 if valid else 2


def _set_key(ctx: CommandContext) -> int:
    import getpass
    import sys

    from doctune.core.teachers.keys import store_api_key

    project = ctx.project()
    base_url = project.config.teacher.base_url
    if not base_url:
        raise UsageError("Set teacher.base_url in doctune.toml first; the key is stored for that endpoint.")
    key = (getpass.getpass("API key: ") if sys.stdin.isatty() else sys.stdin.readline()).strip()
    if not key:
        raise UsageError("No key given.")
    store_api_key(base_url, key)
    ctx.events.done(f"Key stored in the OS keyring for {base_url} (not in the project folder).")
    return 0
