"""Chat over a local GGUF model, with or without retrieval, streaming tokens.

Public surface: ``open_system(project, name) -> ChatSystem`` (``open_model(project, path, rag)`` when the
GGUF is resolved already); ``ChatSystem.stream``,
``.last_answer`` (``Answer``), ``.option_logprob``; errors ``ModelFileError``,
``QuestionTooLong``, ``NoBaseModel``, ``NoTunedModel``, ``SystemNameError``. A ``base`` system needs the
base model's GGUF, which the export step makes (``doctune.core.export.base_gguf``); ``uses_base(name)`` tells
which systems do, and ``model_path(project, name)`` finds the GGUF behind a name. ``with_closed_book_system``
is the closed-book chat's system prompt, which training and evaluation ask with too.
"""
from doctune.core.chat.backend import LlamaBackend, ModelFileError, ProcessBackend, open_backend
from doctune.core.chat.prompt import QuestionTooLong, with_closed_book_system, with_sources
from doctune.core.chat.system import (
    Answer,
    ChatSystem,
    NoBaseModel,
    NoTunedModel,
    SystemNameError,
    model_path,
    open_model,
    open_system,
    split_name,
    uses_base,
)

__all__ = [
    "open_system", "open_model", "ChatSystem", "Answer", "LlamaBackend", "ModelFileError", "QuestionTooLong",
    "NoBaseModel", "NoTunedModel", "uses_base",
    "SystemNameError", "split_name", "ProcessBackend", "open_backend", "model_path", "with_closed_book_system",
    "with_sources",
]
