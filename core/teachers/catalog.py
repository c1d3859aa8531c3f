"""Teacher models worth downloading, with what they need: the Teacher page's short list.

Sizes are the GGUF files' own; memory is what llama.cpp needs to run them with
a 4k context (file size plus the KV cache and working buffers, rounded up).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TeacherChoice:
    label: str
    hf_repo: str
    hf_file: str
    download_gb: float
    memory_gb: float
    licence: str
    note: str

    def describe(self) -> str:
        return (f"{self.label} — {self.download_gb:.1f} GB download, needs about {self.memory_gb:.0f} GB of memory, "
                f"licence {self.licence}. {self.note}")

    def fits(self, memory_gb: float | None) -> bool | None:
        """Whether this computer's memory (RAM, or VRAM on a GPU) holds it; None when unknown."""
        return None if memory_gb is None else self.memory_gb <= memory_gb


RECOMMENDED = (
    TeacherChoice("Qwen2.5 1.5B Instruct (Q4_K_M)", "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
                  "qwen2.5-1.5b-instruct-q4_k_m.gguf", 1.1, 3, "Apache-2.0",
                  "Fast on any laptop; the sample project's teacher."),
    TeacherChoice("Qwen2.5 3B Instruct (Q4_K_M)", "lmstudio-community/Qwen2.5-3B-Instruct-GGUF",
                  "Qwen2.5-3B-Instruct-Q4_K_M.gguf", 1.9, 4, "Qwen Research (non-commercial)",
                  "Better questions; about twice as slow."),
    TeacherChoice("Qwen2.5 7B Instruct (Q4_K_M)", "lmstudio-community/Qwen2.5-7B-Instruct-GGUF",
                  "Qwen2.5-7B-Instruct-Q4_K_M.gguf", 4.7, 8, "Apache-2.0",
                  "The best of these; wants a GPU or patience."),
)
