"""``doctune teacher test``: one small structured request to the configured teacher; ``teacher set-key``."""
from __future__ import annotations

import time

from doctune.core.commands import CommandContext, UsageError, add_command

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
                         "Check the configured teacher (latency, tokens/s; each server when there are "
                         "several) or store its API key in the OS keyring.")
    parser.add_argument("action", choices=["test", "set-key"],
                        help="test: one small structured request; set-key: read a key from stdin into the keyring")


def cmd_teacher(ctx: CommandContext) -> int:
    if ctx.args.action == "set-key":
        return _set_key(ctx)
    project = ctx.project()
    return _recorded(project, lambda: _test(ctx, project))


def _recorded(project, test) -> int:
    """Run ``test`` and keep its verdict for the present teacher settings, whichever way it ends but cancelled:
    the window's sidebar marks a teacher whose last test failed as still to do."""
    from doctune.core.errors import UserError
    from doctune.core.records import TeacherCheck, settings_fingerprint

    tested = settings_fingerprint(project.config.teacher.model_dump())

    def keep(passed: bool, message: str) -> None:
        TeacherCheck(settings=tested, passed=passed, message=message, tested_at=time.time()).save(
            project.layout.teacher_check)

    try:
        code, message = test()
    except UserError as exc:
        keep(False, str(exc))
        raise
    keep(code == 0, message)
    return code


def _test(ctx: CommandContext, project) -> tuple[int, str]:
    """The probe request; the exit code and the summary."""
    from doctune.core.pipeline import open_teacher
    from doctune.core.synth.step import save_speed
    from doctune.core.teachers import TeacherCallError

    started = time.perf_counter()
    teacher = open_teacher(project, events=ctx.events)
    load_s = time.perf_counter() - started
    if len(getattr(teacher, "endpoints", ())) > 1:
        return _test_each_server(ctx, project, teacher)
    try:
        reply = teacher.complete(PROBE_MESSAGES, schema=PROBE_SCHEMA, max_tokens=128, temperature=0.0)
    except TeacherCallError as exc:
        raise _call_failed(project, exc) from None
    finally:
        teacher.close()
    tokens_per_s = reply.completion_tokens / reply.seconds if reply.seconds > 0 else 0.0
    valid = _valid(reply)
    save_speed(project, teacher.name, reply.completion_tokens, reply.seconds, 1)
    ctx.events.metric(latency_s=round(reply.seconds, 3), tokens_per_s=round(tokens_per_s, 1),
                      completion_tokens=reply.completion_tokens, prompt_tokens=reply.prompt_tokens,
                      load_s=round(load_s, 3))
    summary = (f"{teacher.name}: {reply.seconds:.2f} s, {reply.completion_tokens} tokens, {tokens_per_s:.1f} "
               "tokens/s, " + ("valid JSON" if valid else "no valid JSON object"))
    ctx.events.done(summary, teacher=teacher.name, latency_s=reply.seconds, tokens_per_s=tokens_per_s,
                    valid_json=valid)
    if not ctx.jsonl:
        ctx.print(f"Reply: {reply.text[:200]}", markup=False)  # the server's text, never read as Rich markup
    return (0 if valid else 2), summary


def _valid(reply) -> bool:
    return isinstance(reply.data, dict) and all(key in reply.data for key in PROBE_SCHEMA["required"])


def _test_each_server(ctx: CommandContext, project, teacher) -> tuple[int, str]:
    """The probe request on each server of the teacher alone: latency, tokens/s and valid JSON per server; a
    server that does not answer is named with what to do, after the others' figures."""
    from doctune.core.synth.step import save_speed
    from doctune.core.teachers import TeacherCallError

    lines, failures, tokens, seconds, valid_all = [], [], 0, 0.0, True
    teacher.close()
    for alone in teacher.one_per_endpoint():
        where = alone.endpoints[0].label
        try:
            reply = alone.complete(PROBE_MESSAGES, schema=PROBE_SCHEMA, max_tokens=128, temperature=0.0)
        except TeacherCallError as exc:
            failures.append((alone.endpoints[0].url, exc))
            lines.append(f"{where}: no answer ({str(exc)[:160]})")
            ctx.events.metric(endpoint=alone.endpoints[0].url, answered=False)
            continue
        finally:
            alone.close()
        tokens_per_s = reply.completion_tokens / reply.seconds if reply.seconds > 0 else 0.0
        valid = _valid(reply)
        valid_all = valid_all and valid
        tokens, seconds = tokens + reply.completion_tokens, seconds + reply.seconds
        ctx.events.metric(endpoint=alone.endpoints[0].url, answered=True, latency_s=round(reply.seconds, 3),
                          tokens_per_s=round(tokens_per_s, 1), completion_tokens=reply.completion_tokens,
                          valid_json=valid)
        lines.append(f"{where}: {reply.seconds:.2f} s, {tokens_per_s:.1f} tokens/s, "
                     + ("valid JSON" if valid else "no valid JSON object"))
    answered = len(lines) - len(failures)
    save_speed(project, teacher.name, tokens, seconds, answered)
    summary = f"{teacher.name}: " + "; ".join(lines)
    if failures:
        first = _call_failed(project, failures[0][1], failures[0][0])
        from doctune.core.teachers import TeacherError

        raise TeacherError(f"{len(failures)} of {len(lines)} teacher servers did not answer. {summary}.",
                           first.hint, first.window_hint)
    ctx.events.done(summary, teacher=teacher.name, servers=len(lines), valid_json=valid_all)
    return (0 if valid_all else 2), summary


def _call_failed(project, exc: Exception, where: str = ""):
    """The failed probe request in plain words: what the server said and what to do."""
    from doctune.core.teachers import TeacherError

    settings = project.config.teacher
    where = where or settings.base_url or "the local teacher"
    text = str(exc)
    if "HTTP 401" in text or "HTTP 403" in text:
        hint = ("Store the right key with 'doctune teacher set-key', or put it in an environment variable and name "
                "that variable in teacher.api_key_env in doctune.toml.")
        return TeacherError(f"The teacher at {where} refused the API key ({text[:200]}).", hint,
                            "On the Teacher page, enter the right key under API key, press Save, then Test.")
    if "timed out" in text:
        hint = (f"Raise teacher.timeout_s in doctune.toml (now {settings.timeout_s:g} s: the whole reply must arrive "
                "within it; a large model on a slow machine needs more), or check that the server is not stuck.")
        return TeacherError(f"The teacher at {where} did not finish its reply in time ({text[:200]}).", hint,
                            f"Check that the server is not stuck, or choose a smaller Model on the Teacher page: "
                            f"the whole reply must arrive within {settings.timeout_s:g} s (teacher.timeout_s in the "
                            "project's doctune.toml).")
    if "connection failed" in text:
        hint = ("Start the server (for example 'ollama serve' or 'python -m llama_cpp.server --model FILE'), or "
                "correct teacher.base_url in doctune.toml.")
        return TeacherError(f"No teacher answered at {where} ({text[:200]}).", hint,
                            "Start the server (for example 'ollama serve'), or correct the Address on the Teacher "
                            "page and press Save, then Test.")
    if "HTTP 404" in text:
        return TeacherError(f"The teacher at {where} has no chat endpoint or model there ({text[:200]}).",
                            "Check teacher.base_url (it usually ends in /v1) and teacher.model in doctune.toml.",
                            "On the Teacher page, check the Address (it usually ends in /v1) and the Model, press "
                            "Save, then Test.")
    return TeacherError(f"The teacher at {where} did not answer the test request: {text[:300]}",
                        "Check that the server runs and that teacher.base_url and teacher.model are right.",
                        "Check that the server runs and that the Address and Model on the Teacher page are right.")


def _set_key(ctx: CommandContext) -> int:
    import getpass
    import sys

    from doctune.core.teachers.keys import store_api_key

    project = ctx.project()
    urls = project.config.teacher.endpoint_urls()
    if not urls:
        raise UsageError("Set teacher.base_url (or teacher.base_urls) in doctune.toml first; the key is stored for "
                         "each of those servers.")
    key = (getpass.getpass("API key: ") if sys.stdin.isatty() else sys.stdin.readline()).strip()
    if not key:
        raise UsageError("No key given.")
    try:
        for url in urls:  # one keyring entry per server; the same key for each
            store_api_key(url, key)
    except Exception as exc:  # keyring's errors: no backend (headless Linux), a locked or refusing keyring
        from doctune.core.teachers import TeacherError

        raise TeacherError(f"The key could not be stored in the OS keyring ({type(exc).__name__}: {exc}).",
                           "Put the key in an environment variable instead (e.g. export DOCTUNE_API_KEY=…) and "
                           "set teacher.api_key_env = \"DOCTUNE_API_KEY\" in doctune.toml; the key then never "
                           "touches the project folder.") from None
    ctx.events.done(f"Key stored in the OS keyring for {', '.join(urls)} (not in the project folder).")
    return 0
