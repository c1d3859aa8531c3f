"""Export: GGUF formats, progress, the verification report in plain words, folder and commands."""
from __future__ import annotations

import html
import shlex
from pathlib import Path

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QPushButton, QTextBrowser

from doctune.core.records import ExportLayout
from doctune.core.runs import read_manifest, ready_files
from doctune.desktop.pages.base import Page
from doctune.desktop.state import latest_manifest, latest_run
from doctune.desktop.widgets import JobProgress, explanation, open_in_system

FORMATS = {
    "f16": "F16 — full precision, largest file",
    "q8_0": "Q8_0 — nearly lossless, half the size",
    "q4_k_m": "Q4_K_M — smallest, for laptops with little memory",
}


def describe_manifest(manifest: dict) -> str:
    """The verification report as plain sentences (HTML), one per file: ready, failed its checks, failed to be
    written (with the reason the export recorded), or not reached because the export stopped before it."""
    files = manifest.get("files", {})
    lines = []
    for fmt in [*files, *(f for f in manifest.get("formats", []) if f not in files)]:
        entry = files.get(fmt)
        if entry is None:
            lines.append(f"<li><b>{html.escape(fmt.upper())}</b>: <span style='color:#c0392b'>not exported</span> — "
                         "the export stopped before this file. Press Export to try again.</li>")
            continue
        name = html.escape(entry.get("file") or fmt)
        if entry.get("error"):
            lines.append(f"<li><b>{name}</b>: <span style='color:#c0392b'>failed</span> — "
                         f"{html.escape(entry['error'])}</li>")
            continue
        report = entry.get("verification") or {}
        top1 = (report.get("checks") or {}).get("top1") or {}
        agreement = (f" It predicts the same next word as the trained model {top1['agreement']:.0%} of the time "
                     f"(needed: {top1['threshold']:.0%}).") if "agreement" in top1 else ""
        if entry.get("ready"):
            lines.append(f"<li><b>{name}</b>: checked and ready to use.{agreement}</li>")
        else:
            problems = "; ".join(html.escape(str(p)) for p in report.get("problems", [])) or "it did not pass the checks"
            lines.append(f"<li><b>{name}</b>: <span style='color:#c0392b'>not ready</span> — {problems}.{agreement}</li>")
    return "<ul>" + "".join(lines) + "</ul>" if lines else "The export lists no files yet."


class ExportPage(Page):
    key = "export"
    title = "Export"
    summary = ("Export writes the tuned model as GGUF files that llama.cpp, Ollama and LM Studio run. Every file is "
               "checked against the trained model before it is marked ready.")

    def __init__(self, runner, parent=None) -> None:
        super().__init__(runner, parent)
        self.format_boxes = {name: QCheckBox(text) for name, text in FORMATS.items()}
        for box in self.format_boxes.values():
            box.setChecked(True)
            self.body.addWidget(box)
        buttons = QHBoxLayout()
        self.export_button = QPushButton("Export")
        self.open_button = QPushButton("Open folder")
        self.copy_ollama = QPushButton("Copy Ollama command")
        self.copy_llama = QPushButton("Copy llama.cpp command")
        for button in (self.export_button, self.open_button, self.copy_ollama, self.copy_llama):
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.body.addLayout(buttons)
        self.progress = JobProgress()
        self.body.addWidget(self.progress)
        self.report = QTextBrowser()
        self.report.setMinimumHeight(180)
        self.body.addWidget(self.report, 1)
        self.run_note = explanation("")
        self.body.addWidget(self.run_note)
        self.export_button.clicked.connect(self.export)
        self.open_button.clicked.connect(self.open_folder)
        self.copy_ollama.clicked.connect(lambda: self._copy("ollama"))
        self.copy_llama.clicked.connect(lambda: self._copy("llama"))

    def formats(self) -> list[str]:
        return [name for name, box in self.format_boxes.items() if box.isChecked()]

    def export(self):
        project = self.open_config()
        if self.formats() and self.formats() != project.config.export.formats:
            project.config.export.formats = self.formats()
            project.save()
        found = latest_run(self.project)
        if found is None:
            self.run_note.setText("Train the student first: there is no finished training run to export.")
            return None
        job = self.start_job(f"Export {found[0].name}", ["export", "--run", found[0].name, "--formats", ",".join(self.formats())])
        self.progress.follow(job)
        return job

    def manifest(self) -> tuple[Path, dict] | None:
        path = latest_manifest(self.project) if self.project else None
        if path is None:
            return None
        data = read_manifest(path.parent)
        return None if data is None else (path, data)

    def ready_file(self) -> Path | None:
        found = self.manifest()
        if not found:
            return None
        ready = ready_files(found[0].parent)
        ready.pop("lora", None)  # a LoRA adapter GGUF runs only on top of its base model
        return ready.get("q8_0") or ready.get("q4_k_m") or next(iter(ready.values()), None)

    def refresh(self) -> None:
        chosen = self.open_config().config.export.formats
        for name, box in self.format_boxes.items():
            box.setChecked(name in chosen)
        found = self.manifest()
        ready = self.ready_file()
        for button in (self.open_button, self.copy_ollama, self.copy_llama):
            button.setEnabled(found is not None)
        details = ExportLayout(found[0].parent).verification_text if found else None
        technical = (f"<pre>{html.escape(details.read_text(encoding='utf-8'))}</pre>"
                     if details is not None and details.exists() else "")
        self.report.setHtml(describe_manifest(found[1]) + technical if found else "No export yet.")
        run = latest_run(self.project)
        self.run_note.setText(f"Run to export: {run[0].name}." if run else "No finished training run yet.")
        self.copy_llama.setEnabled(ready is not None)
        self.copy_ollama.setEnabled(ready is not None)

    def open_folder(self) -> None:
        found = self.manifest()
        if found:
            open_in_system(self, found[0].parent, "export folder")

    def commands(self) -> dict[str, str]:
        ready = self.ready_file()
        if ready is None:
            return {}
        modelfile = ExportLayout(ready.parent).modelfile
        name = shlex.quote("doctune-" + (self.project.name if self.project else "model").lower().replace(" ", "-"))
        return {  # every name and path quoted: a folder name must never become shell syntax
            "ollama": f"ollama create {name} -f {shlex.quote(str(modelfile))}" if modelfile.exists()
            else f"printf 'FROM %s\\n' {shlex.quote(str(ready))} > Modelfile && ollama create {name} -f Modelfile",
            "llama": f"llama-cli -m {shlex.quote(str(ready))} -cnv",
        }

    def _copy(self, which: str) -> None:
        command = self.commands().get(which)
        if command:
            QGuiApplication.clipboard().setText(command)
            self.run_note.setText(f"Copied: {command}")
