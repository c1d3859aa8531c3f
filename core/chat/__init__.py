"""Chat over a local GGUF model, with or without retrieval, streaming tokens.

Public surface: ``open_system(project, name) -> ChatSystem``; ``ChatSystem.stream``,
``.last_answer`` (``Answer``), ``.option_logprob``; errors ``ModelFileError``,
``QuestionTooLong``, ``NoTunedModel``, ``SystemNameError``.
"""
from doctune.core.chat.backend import LlamaBackend, ModelFileError, ProcessBackend, open_backend
from doctune.core.chat.prompt import QuestionTooLong
from doctune.core.chat.system import Answer, ChatSystem, NoTunedModel, SystemNameError, open_system, split_name

__all__ = [
    "open_system", "ChatSystem", "Answer", "LlamaBackend", "ModelFileError", "QuestionTooLong", "NoTunedModel",
    "SystemNameError", "split_name", "ProcessBackend", "open_backend",
]
