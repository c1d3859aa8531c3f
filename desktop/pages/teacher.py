"""Teacher: a local GGUF file (default) or an OpenAI-compatible endpoint, with a Test button."""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

from PySide6.QtCore import QProcess, Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
)

from doctune.desktop.jobs import SUCCEEDED
from doctune.desktop.pages.base import Page
from doctune.desktop.widgets import JobProgress, explanation, show_error


def is_local_url(url: str) -> bool:
    """This computer: a loopback address, or a name the hosts file maps only to loopback (no DNS lookup:
    the same rule the teacher applies before sending anything)."""
    from doctune.core.teachers.api import is_loopback

    return is_loopback(url, offline=True)


def address_lines(text: str) -> list[str]:
    """The addresses typed in the Address box: one per line, blank lines and repeats left out."""
    return list(dict.fromkeys(line.strip().rstrip("/") for line in text.splitlines() if line.strip()))


def bad_address(urls: list[str]) -> str | None:
    """The first address that is not an http(s) address with a host, or None."""
    from doctune.core.config import check_http_url

    for url in urls:
        try:
            check_http_url(url)
        except ValueError:
            return url
    return None


class TeacherPage(Page):
    key = "teacher"
    title = "Teacher"
    summary = ("The teacher is the model that writes the study material (questions, answers, rewritten passages) "
               "from your documents. A local GGUF file keeps everything on this computer.")

    def __init__(self, runner, parent=None) -> None:
        super().__init__(runner, parent)
        self.local_radio = QRadioButton("Local model file (GGUF) — nothing leaves this computer")
        self.endpoint_radio = QRadioButton("Server (OpenAI-compatible: Ollama, LM Studio, vLLM, llama.cpp server, OpenAI…)")
        self.lab_radio = QRadioButton("Built-in lab teacher — writes the study material from the made-up world's "
                                      "facts, without a model (the offline pipeline check's teacher)")
        self.lab_radio.setVisible(False)  # offered only in a project that uses it
        group = QButtonGroup(self)
        group.addButton(self.local_radio)
        group.addButton(self.endpoint_radio)
        group.addButton(self.lab_radio)
        self.body.addWidget(self.lab_radio)
        self.body.addWidget(self.local_radio)
        local_box = QGroupBox()
        local_layout = QVBoxLayout(local_box)
        local_row = QHBoxLayout()
        self.model_path = QLineEdit()
        self.model_path.setPlaceholderText("/path/to/teacher.gguf")
        browse = QPushButton("Choose a file…")
        browse.clicked.connect(self.choose_gguf)
        local_row.addWidget(self.model_path, 1)
        local_row.addWidget(browse)
        local_layout.addLayout(local_row)
        recommended_row = QHBoxLayout()
        self.recommended = QComboBox()
        self.recommended.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.recommended.setMinimumContentsLength(24)
        self.recommended.currentIndexChanged.connect(self._describe_recommended)
        self.recommended.setToolTip("Models that write good study material; downloaded from Hugging Face with progress")
        self.use_recommended = QPushButton("Download and use")
        self.use_recommended.clicked.connect(self.choose_recommended)
        recommended_row.addWidget(QLabel("Or download one:"))
        recommended_row.addWidget(self.recommended, 1)
        recommended_row.addWidget(self.use_recommended)
        local_layout.addLayout(recommended_row)
        self.recommended_detail = explanation("")
        local_layout.addWidget(self.recommended_detail)
        self.machine = explanation("Checking what this computer can run…")
        local_layout.addWidget(self.machine)
        self.body.addWidget(local_box)
        self.memory_gb: float | None = None
        self._fill_recommended()
        self._probe_memory()
        self.body.addWidget(self.endpoint_radio)
        endpoint_box = QGroupBox()
        form = QFormLayout(endpoint_box)
        self.addresses = QPlainTextEdit()
        self.addresses.setTabChangesFocus(True)
        self.addresses.setPlaceholderText("http://127.0.0.1:11434/v1\n(several servers of the same model: one "
                                          "address per line)")
        self.addresses.setToolTip("The server's address. For a large collection of documents, run the same model "
                                  "on several servers (vLLM or llama.cpp, on other GPUs or computers) and enter "
                                  "one address per line: the requests are spread over them, and a server that "
                                  "stops answering is left out while the others take its work.")
        self.addresses.setFixedHeight(self.addresses.fontMetrics().lineSpacing() * 4 + 12)
        self.model_name = QLineEdit()
        self.model_name.setPlaceholderText("e.g. qwen2.5:7b-instruct")
        self.api_key = QLineEdit()
        self.api_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.api_key.setPlaceholderText("stored in the system keyring, never in the project folder")
        form.addRow("Address", self.addresses)
        form.addRow("Model", self.model_name)
        form.addRow("API key", self.api_key)
        self.remote_warning = QLabel("")
        self.remote_warning.setWordWrap(True)
        self.remote_warning.setObjectName("warning")
        self.remote_opt_in = QCheckBox("I understand, and allow sending my documents to these servers")
        form.addRow(self.remote_warning)
        form.addRow(self.remote_opt_in)
        self.body.addWidget(endpoint_box)
        row = QHBoxLayout()
        self.save_button = QPushButton("Save")
        self.test_button = QPushButton("Test")
        self.test_button.setToolTip("Send one small request and report latency and tokens per second")
        row.addWidget(self.save_button)
        row.addWidget(self.test_button)
        row.addStretch(1)
        self.body.addLayout(row)
        self.progress = JobProgress()
        self.body.addWidget(self.progress)
        self.result = explanation("")
        self.body.addWidget(self.result)
        self.body.addStretch(1)
        self.local_radio.toggled.connect(lambda local: (local_box.setEnabled(local), endpoint_box.setEnabled(not local)))
        self.addresses.textChanged.connect(self._update_warning)
        self.save_button.clicked.connect(self.save)
        self.test_button.clicked.connect(self.test)
        self.local_radio.setChecked(True)
        self._update_warning()

    # ----- recommended models --------------------------------------------------------
    def _fill_recommended(self) -> None:
        from doctune.core.teachers.catalog import RECOMMENDED

        chosen = max(self.recommended.currentIndex(), 0)
        self.recommended.clear()
        for choice in RECOMMENDED:
            fits = choice.fits(self.memory_gb)
            mark = "" if fits is None else (" · ✓ fits" if fits else " · ✗ too big")
            self.recommended.addItem(f"{choice.label} · {choice.download_gb:.1f} GB{mark}")
            self.recommended.setItemData(self.recommended.count() - 1, choice.describe(), Qt.ItemDataRole.ToolTipRole)
        self.recommended.setCurrentIndex(chosen)
        self._describe_recommended(chosen)

    def _describe_recommended(self, index: int) -> None:
        from doctune.core.teachers.catalog import RECOMMENDED

        if 0 <= index < len(RECOMMENDED):
            self.recommended_detail.setText(RECOMMENDED[index].describe())

    def _probe_memory(self) -> None:
        """Ask a child process what memory this computer has (the window never imports torch)."""
        from doctune.desktop.pages.train import probe_command

        process = QProcess(self)
        program, args = probe_command()

        def finished(code: int, _status) -> None:
            lines = bytes(process.readAllStandardOutput()).decode(errors="replace").strip().splitlines()
            process.deleteLater()
            try:
                found = json.loads(lines[-1]) if code == 0 and lines else {}
            except ValueError:
                found = {}
            self.show_machine(found.get("ram_gb"), found.get("vram_gb"))

        process.finished.connect(finished)
        process.start(program, args)

    def show_machine(self, ram_gb: float | None, vram_gb: float | None) -> None:
        if ram_gb is None:
            self.machine.setText("What this computer can run could not be detected.")
            return
        self.memory_gb = vram_gb or ram_gb * 0.6  # leave room for the window, the student and the system
        where = f"an NVIDIA GPU with {vram_gb:.0f} GB" if vram_gb else "no NVIDIA GPU (the CPU runs the teacher)"
        self.machine.setText(f"This computer: {ram_gb:.0f} GB of memory, {where}. A teacher up to about "
                             f"{self.memory_gb:.0f} GB of memory runs comfortably.")
        self._fill_recommended()

    def choose_recommended(self):
        """Use the chosen recommended model: saved as the teacher, then downloaded and tested (with progress)."""
        from doctune.core.teachers.catalog import RECOMMENDED

        choice = RECOMMENDED[self.recommended.currentIndex()]
        project = self.open_config()
        if project.config.privacy.offline:
            show_error(self, "This project is set to work offline, so nothing can be downloaded. Download "
                             f"{choice.hf_file} from huggingface.co/{choice.hf_repo} on another computer, then use "
                             "Choose a file….")
            return None
        teacher = project.config.teacher
        teacher.kind, teacher.model_path = "local", ""
        teacher.hf_repo, teacher.hf_file = choice.hf_repo, choice.hf_file
        project.config.privacy.allow_remote_teacher = False
        project.save()
        self.refresh()
        self.changed.emit()
        return self._tested(self.start_job(f"Download and test {choice.label}", ["teacher", "test"]))

    def choose_gguf(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose the teacher model", str(Path.home()), "GGUF models (*.gguf)")
        if path:
            self.model_path.setText(path)

    def _update_warning(self) -> None:
        remote = list(dict.fromkeys(urlparse(url).hostname or url for url in address_lines(self.addresses.toPlainText())
                                    if not is_local_url(url)))
        one = len(remote) == 1
        self.remote_warning.setText(
            f"⚠ {', '.join(remote)} {'is' if one else 'are'} not on this computer: the text of your documents will be "
            f"sent to {'it' if one else 'them'}." if remote else "")
        self.remote_opt_in.setVisible(bool(remote))

    def refresh(self) -> None:
        teacher = self.open_config().config.teacher
        privacy = self.open_config().config.privacy
        radios = {"local": self.local_radio, "openai": self.endpoint_radio, "lab": self.lab_radio}
        radios.get(teacher.kind, self.endpoint_radio).setChecked(True)
        self.lab_radio.setVisible(teacher.kind == "lab" or not self.lab_radio.isHidden())
        self.model_path.setText(teacher.model_path)
        self.model_path.setPlaceholderText(f"{teacher.hf_file} from {teacher.hf_repo} (downloaded when first used)"
                                           if teacher.hf_repo and teacher.hf_file else "/path/to/teacher.gguf")
        self.addresses.setPlainText("\n".join(teacher.endpoint_urls()))
        self.model_name.setText(teacher.model)
        self.remote_opt_in.setChecked(privacy.allow_remote_teacher)

    def save(self) -> bool:
        project = self.open_config()
        teacher = project.config.teacher
        if self.lab_radio.isChecked():
            teacher.kind = "lab"
            project.config.privacy.allow_remote_teacher = False
        elif self.local_radio.isChecked():
            teacher.kind = "local"
            teacher.model_path = self.model_path.text().strip()
            project.config.privacy.allow_remote_teacher = False  # local again: nothing may be sent anywhere
        else:
            urls = address_lines(self.addresses.toPlainText())
            wrong = bad_address(urls)
            if wrong is not None:
                show_error(self, f"'{wrong}' is not a server address. Enter each address in full, one per line, "
                                 "for example http://127.0.0.1:11434/v1.")
                return False
            remote = any(not is_local_url(url) for url in urls)
            if remote and not self.remote_opt_in.isChecked():
                show_error(self, "A server is not on this computer. Tick the box to allow sending your documents "
                                 "to it, or choose a local model.")
                return False
            teacher.kind = "openai"
            teacher.base_url = urls[0] if urls else ""
            teacher.base_urls = urls if len(urls) > 1 else []
            teacher.model = self.model_name.text().strip()
            project.config.privacy.allow_remote_teacher = remote
            if self.api_key.text():
                from doctune.core.teachers.keys import store_api_key

                for url in urls:  # one keyring entry per server, the same key for each
                    store_api_key(url, self.api_key.text())
                self.api_key.clear()
        project.save()
        self.result.setText("Saved.")
        self.changed.emit()
        return True

    def test(self):
        if not self.save():
            return None
        return self._tested(self.start_job("Test the teacher", ["teacher", "test"]))

    def _tested(self, job):
        """Follow a test: the progress line while it runs, then its verdict said once. The test command keeps its
        verdict for the project; when it ends the sidebar marks are computed again (a teacher that failed its test
        is to do, not done)."""
        self.result.setText("")  # no earlier verdict (or "Saved.") under this test's progress line
        self.progress.follow(job)
        job.finished.connect(lambda state: self._show_verdict(job, state))
        job.finished.connect(lambda _state: self.changed.emit())
        return job

    def _show_verdict(self, job, state: str) -> None:
        """A passed test's figures in the result line, the progress line (which would repeat them) gone; any other
        ending keeps the progress line alone, its bar saying Failed (or Cancelled) above the plain reason."""
        if state == SUCCEEDED:
            self.result.setText(job.record.message)
            self.progress.setVisible(False)
