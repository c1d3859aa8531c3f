"""Teachers: the models that write synthetic training data and judge answers.

``open_teacher(project)`` builds the teacher the project's ``[teacher]``
settings describe, after the privacy checks: a remote endpoint (each of them, when there are several)
needs ``privacy.allow_remote_teacher`` and is always refused when
``privacy.offline`` is set. Kinds built above the steps (the knowledge lab's
teacher, kind ``lab``) come in ``kinds``: the commands open teachers through
``doctune.core.pipeline.open_teacher``, which passes them.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

from doctune.core.teachers.base import (
    Teacher,
    TeacherCallError,
    TeacherError,
    TeacherReply,
    estimate_tokens,
    extract_json,
)


def open_teacher(project, *, n_threads: int | None = None, cancel=None, events=None,
                 kinds: Mapping[str, Callable[[], Teacher]] | None = None) -> Teacher:
    """The project's teacher; ``cancel`` (a CancelToken) cuts retry waits short; ``events`` shows a model download.

    ``kinds`` builds the teachers of kinds other than ``local`` and ``openai`` (kind → factory)."""
    settings = project.config.teacher
    privacy = project.config.privacy
    if kinds and settings.kind in kinds:
        return kinds[settings.kind]()
    if settings.kind == "local":
        from doctune.core.teachers.local import LocalTeacher, resolve_model_file

        return LocalTeacher(resolve_model_file(settings, privacy.offline, events), n_ctx=settings.n_ctx,
                            n_gpu_layers=settings.n_gpu_layers, temperature=settings.temperature,
                            max_tokens=settings.max_tokens, n_threads=n_threads, parallel=settings.parallel)
    if settings.kind != "openai":
        raise TeacherError(
            f"The steps cannot open a teacher of kind '{settings.kind}' ([teacher] kind in doctune.toml) by "
            "themselves.",
            "Open it with doctune.core.pipeline.open_teacher, as doctune synth, eval, teacher and run do, or set "
            "[teacher] kind to local or openai.")
    from doctune.core.teachers.api import ApiTeacher, check_endpoints_allowed
    from doctune.core.teachers.keys import read_api_key

    urls = settings.endpoint_urls()
    connect_urls = check_endpoints_allowed(urls, privacy)
    return ApiTeacher(
        urls, settings.model, api_key={url: read_api_key(url, settings.api_key_env) for url in urls},
        concurrency=settings.concurrency, timeout_s=settings.timeout_s, max_retries=settings.max_retries,
        retry_base_s=settings.retry_base_s, retry_max_s=settings.retry_max_s, temperature=settings.temperature,
        max_tokens=settings.max_tokens, structured_output=settings.structured_output,
        sleep=cancel.wait if cancel is not None else None, connect_url=connect_urls,
        warn=events.warning if events is not None else None, cancel=cancel, probe_after_s=settings.probe_after_s,
    )


__all__ = [
    "open_teacher", "Teacher", "TeacherReply", "TeacherError", "TeacherCallError", "extract_json", "estimate_tokens",
]
