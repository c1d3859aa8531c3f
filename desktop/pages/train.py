"""Train: student, preset, device, live loss curve with tokens/s and ETA, cancel and resume."""
from __future__ import annotations

import json
import sys

from PySide6.QtCore import QProcess, Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
)

from doctune.core.config import TrainSettings
from doctune.core.records import MetricRecord, ProjectLayout, RunLayout, read_records
from doctune.core.runs import INTERRUPTED, run_folders, run_state
from doctune.desktop.pages.base import Page
from doctune.desktop.state import latest_run
from doctune.desktop.widgets import JobProgress, LazyPlot, explanation, whole_number_axis

OWN_PRESET = "Project's own"
PRESETS = {  # passed to the training job as options: choosing one never changes the project's settings
    "Quick": {"epochs": 1.0, "lora_rank": 8, "learning_rate": 3e-4},
    "Balanced": {"epochs": 3.0, "lora_rank": 16, "learning_rate": 2e-4},
    "Thorough": {"epochs": 5.0, "lora_rank": 32, "learning_rate": 1e-4},
    OWN_PRESET: {},
}
TRAIN_OPTIONS = {"epochs": "--epochs", "lora_rank": "--lora-rank", "learning_rate": "--lr", "max_steps": "--max-steps",
                 "checkpoint_every": "--checkpoint-every", "device": "--device"}
PRESET_SETTING = "train/preset"  # the window's setting that remembers the chosen preset
PRESET_HELP = {
    "Quick": "one pass over the material: minutes, a first impression",
    "Balanced": "three passes: the usual choice",
    "Thorough": "five passes with a larger adapter: best recall, takes longest",
    OWN_PRESET: "the training settings saved with this project (the offline check's suit its small model)",
}
PRESET_KEYS = ("epochs", "lora_rank", "learning_rate")


def probe_command() -> tuple[str, list[str]]:
    if getattr(sys, "frozen", False):
        return sys.executable, ["--probe-device"]
    return sys.executable, ["-m", "doctune.desktop.probe"]


class TrainPage(Page):
    key = "train"
    title = "Train"
    summary = ("The student is the small model that learns your documents. Training adds a small adapter to it "
               "(LoRA); it can be stopped at any time and resumed later.")

    def __init__(self, runner, parent=None) -> None:
        super().__init__(runner, parent)
        self.job = None
        form = QFormLayout()
        student_row = QHBoxLayout()
        self.student = QLineEdit()
        self.student.setPlaceholderText("Hugging Face id (e.g. HuggingFaceTB/SmolLM2-360M-Instruct) or a folder")
        browse = QPushButton("Folder…")
        browse.clicked.connect(self.choose_folder)
        student_row.addWidget(self.student, 1)
        student_row.addWidget(browse)
        form.addRow("Student model", student_row)
        self.student_note = explanation("")
        self.student_note.setVisible(False)
        form.addRow("", self.student_note)
        self.preset = QComboBox()
        for name in PRESETS:
            self.preset.addItem(f"{name} — {PRESET_HELP[name]}", name)
        self.preset.setCurrentIndex(1)
        self.settings = None  # the window's settings, where the chosen preset is remembered (remember_choices)
        self._own_settings_offered = None  # the project for which "Project's own" was last considered
        form.addRow("Preset", self.preset)
        self.device = QLabel("detecting…")
        form.addRow("Device", self.device)
        self.body.addLayout(form)
        self.advanced_toggle = QToolButton()
        self.advanced_toggle.setText("Advanced settings")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.setAutoRaise(True)
        self.advanced_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced = QGroupBox()
        advanced = QFormLayout(self.advanced)
        self.max_steps = QSpinBox()
        self.max_steps.setRange(0, 1_000_000)
        self.max_steps.setSpecialValueText("no limit (use the preset's passes)")
        self.learning_rate = QDoubleSpinBox()
        self.learning_rate.setDecimals(6)
        self.learning_rate.setRange(0.0, 1.0)
        self.learning_rate.setSpecialValueText("preset")
        self.learning_rate.setSingleStep(1e-4)
        self.checkpoint_every = QSpinBox()
        self.checkpoint_every.setRange(1, 100_000)
        self.checkpoint_every.setValue(100)
        self.device_choice = QComboBox()
        self.device_choice.addItems(["auto", "cpu", "cuda", "mps"])
        advanced.addRow("Stop after steps", self.max_steps)
        advanced.addRow("Learning rate", self.learning_rate)
        advanced.addRow("Checkpoint every (steps)", self.checkpoint_every)
        advanced.addRow("Device", self.device_choice)
        self.advanced.setVisible(False)
        self.advanced_toggle.toggled.connect(self._toggle_advanced)
        self.body.addWidget(self.advanced_toggle)
        self.body.addWidget(self.advanced)
        buttons = QHBoxLayout()
        self.train_button = QPushButton("Train")
        self.train_button.setToolTip("Start training (Ctrl+R)")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the interrupted run from its last checkpoint")
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.resume_button)
        buttons.addStretch(1)
        self.body.addLayout(buttons)
        self.progress = JobProgress()
        self.body.addWidget(self.progress)
        self.speed = QLabel("")
        self.body.addWidget(self.speed)
        self.curve = None
        self.plot = LazyPlot(self._configure_plot, minimum_height=260)
        self.steps: list[float] = []
        self.losses: list[float] = []
        self.body.addWidget(self.plot, 1)
        self.last_run = explanation("")
        self.body.addWidget(self.last_run)
        self.train_button.clicked.connect(self.train)
        QShortcut(QKeySequence("Ctrl+R"), self, lambda: self.train() if self.train_button.isEnabled() else None)
        self.resume_button.clicked.connect(self.resume)
        self._probe_device()

    def _configure_plot(self, plot) -> None:
        import pyqtgraph as pg

        plot.setAxisItems({"bottom": whole_number_axis(pg)})
        plot.setLabel("bottom", "step")
        plot.setLabel("left", "loss")
        plot.showGrid(x=True, y=True, alpha=0.3)
        self.curve = plot.plot(self.steps, self.losses, pen=pg.mkPen("#2f80ed", width=2), symbol="o", symbolSize=4,
                               symbolBrush="#2f80ed")

    def remember_choices(self, settings) -> None:
        """Keep the chosen preset in the window's ``settings`` (a QSettings), so it is still chosen after a
        restart; the project's doctune.toml is left as it is."""
        self.settings = settings
        index = self.preset.findData(settings.value(PRESET_SETTING))
        if index >= 0:
            self.preset.setCurrentIndex(index)
        self.preset.currentIndexChanged.connect(lambda _index: settings.setValue(PRESET_SETTING,
                                                                                  self.preset.currentData()))

    def _toggle_advanced(self, shown: bool) -> None:
        self.advanced.setVisible(shown)
        self.advanced_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the student model folder")
        if folder:
            self.student.setText(folder)

    def _probe_device(self) -> None:
        process = QProcess(self)
        program, args = probe_command()

        def finished(code: int, _status) -> None:
            text = bytes(process.readAllStandardOutput()).decode(errors="replace").strip().splitlines()
            try:
                found = json.loads(text[-1]) if code == 0 and text else None
            except ValueError:
                found = None
            self.device.setText(f"{found['device'].upper()} ({found['dtype']})" if found else "could not be detected")
            process.deleteLater()

        process.finished.connect(finished)
        process.start(program, args)

    # ----- runs --------------------------------------------------------------------
    def _interrupted_run(self) -> str | None:
        """The newest run that started and has not completed (``core.runs.run_state``: a run whose summary
        cannot be read is not offered, its state being unknown)."""
        if self.project is None:
            return None
        for run_dir in reversed(run_folders(ProjectLayout(self.project).runs)):  # run ids begin with their start time
            if run_state(run_dir) == INTERRUPTED:
                return run_dir.name
        return None

    def refresh(self) -> None:
        project = self.open_config()
        if self.student.text().strip() != project.config.student.model:
            self._note_student("")  # a note about another student (or another project's) no longer applies
        self.student.setText(project.config.student.model)
        self._offer_own_settings(project)
        running = bool(self.job and self.job.running)
        self.resume_button.setEnabled(self._interrupted_run() is not None and not running)
        found = latest_run(self.project)
        text = (f"Last finished run: {found[0].name} — final loss {_loss_text(found[1].get('final_loss'))}, "
                f"{found[1].get('steps', '—')} steps." if found else "No finished training run yet.")
        if not running:  # the newest run's curve, as its metrics recorded it (after a restart too)
            shown = self._show_saved_curve()
            if shown is not None and (found is None or shown.name != found[0].name):
                text += (f" The chart shows run {shown.name}, stopped at step {int(self.steps[-1])}: Resume "
                         "continues it.") if run_state(shown) == INTERRUPTED else f" The chart shows run {shown.name}."
        self.last_run.setText(text)

    def _offer_own_settings(self, project) -> None:
        """Choose "Project's own" once per project opened when its training settings are not DocTune's defaults
        (the offline check's project, or one set up by hand): a preset would otherwise replace them."""
        if self._own_settings_offered == project.root:
            return
        self._own_settings_offered = project.root
        defaults = TrainSettings()
        if any(getattr(project.config.train, key) != getattr(defaults, key) for key in PRESET_KEYS):
            self.preset.setCurrentIndex(self.preset.findData(OWN_PRESET))

    def _show_saved_curve(self):
        """Draw the newest run's recorded losses; return its folder (None, and an empty chart, when no run has
        any)."""
        for run_dir in reversed(run_folders(ProjectLayout(self.project).runs)):
            points = saved_losses(run_dir)
            if points:
                self._set_curve(points)
                return run_dir
        self._set_curve([])
        return None

    def _set_curve(self, points: list[tuple[int, float]]) -> None:
        self.steps[:] = [float(step) for step, _loss in points]
        self.losses[:] = [loss for _step, loss in points]
        if self.curve is not None:  # else the curve is drawn from these lists when the plot is built
            self.curve.setData(self.steps, self.losses)

    def _save_student(self) -> bool:
        """A student typed here is the project's student from now on (export, chat and evaluation use it too);
        the project's settings are written only when it changed. A student whose folder recommends its own
        training settings brings them (the preset becomes "Project's own", and the page says what changed).
        False when the student's recommendations cannot be used (the page says why)."""
        from doctune.core.config import ConfigError
        from doctune.core.students import choose_student, describe_changes, recommended_train

        project = self.open_config()
        student = self.student.text().strip()
        if student == project.config.student.model:
            return True
        self._note_student("")
        try:
            changed = choose_student(project.config, student)
        except ConfigError as exc:
            self._note_student(f"This student's folder recommends training settings DocTune cannot use: {exc} "
                               "Fix or delete that file, or choose another student.")
            return False
        project.save()
        recommended = recommended_train(student)
        if recommended:  # already the project's or not, no preset may replace them
            self.preset.setCurrentIndex(self.preset.findData(OWN_PRESET))
        brought = {name: value for name, value in changed.items() if name in recommended}
        restored = {name: value for name, value in changed.items() if name not in recommended}
        said = []
        if brought:
            said.append(f"This student recommends its own training settings, now the project's: "
                        f"{describe_changes(brought)} (preset \u201cProject's own\u201d).")
        if restored:
            said.append(f"The training settings the previous student brought are back to DocTune's defaults: "
                        f"{describe_changes(restored)}.")
        self._note_student(" ".join(said))
        return True

    def _note_student(self, text: str) -> None:
        self.student_note.setText(text)
        self.student_note.setVisible(bool(text))

    def train_options(self) -> list[str]:
        """The preset and the advanced settings, as options of this one training job."""
        chosen = dict(PRESETS[self.preset.currentData()])
        if self.learning_rate.value() > 0:
            chosen["learning_rate"] = self.learning_rate.value()
        chosen.update(max_steps=self.max_steps.value(), checkpoint_every=self.checkpoint_every.value(),
                      device=self.device_choice.currentText())
        return [part for name, value in chosen.items() for part in (TRAIN_OPTIONS[name], str(value))]

    def train(self):
        if not self._save_student():
            return None
        return self._start(["train", *self.train_options()], "Train the student")

    def resume(self):
        run_id = self._interrupted_run()
        if not run_id:
            return None
        job = self._start(["train", "--resume", run_id], f"Resume training {run_id}")
        self._set_curve(saved_losses(ProjectLayout(self.project).runs / run_id))  # its curve so far, then on
        return job

    def _start(self, args: list[str], title: str):
        self._set_curve([])
        self.speed.setText("")
        self.job = self.start_job(title, args)
        self.job.event.connect(self._on_event)
        self.progress.follow(self.job)
        self.train_button.setEnabled(False)
        self.resume_button.setEnabled(False)
        self.job.finished.connect(lambda _state: self.train_button.setEnabled(True))
        return self.job

    def _on_event(self, event: dict) -> None:
        if event["event"] != "metric":
            return
        if "loss" in event and "step" in event:
            step = float(event["step"])
            while self.steps and self.steps[-1] >= step:  # a resumed run does again the steps after its checkpoint
                self.steps.pop()
                self.losses.pop()
            self.steps.append(step)
            self.losses.append(float(event["loss"]))
            if self.curve is not None:  # else the curve is drawn from these lists when the plot is built
                self.curve.setData(self.steps, self.losses)
        parts = []
        if event.get("tokens_per_s") is not None:
            parts.append(f"{event['tokens_per_s']:.0f} tokens/s")
        if event.get("loss") is not None:
            parts.append(f"loss {event['loss']:.3f}")
        if parts:  # the time left is shown once, on the progress line above
            self.speed.setText(" · ".join(parts))


def saved_losses(run_dir) -> list[tuple[int, float]]:
    """(step, loss) of each step the run's metrics record, in step order (a step done again after a resume:
    its last value)."""
    last: dict[int, float] = {}
    for record in read_records(MetricRecord, RunLayout(run_dir).metrics):
        if record.loss is not None:
            last[record.step] = record.loss
    return sorted(last.items())


def _loss_text(loss) -> str:
    return f"{loss:.3f}" if isinstance(loss, (int, float)) else "—"
