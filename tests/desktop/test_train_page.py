"""Train page: live loss curve, cancel leaves a resumable checkpoint, Resume finishes, a killed job is an error."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from qt_helpers import wait_for_job

from doctune.desktop.jobs import CANCELLED, FAILED, SUCCEEDED
from doctune.desktop.responsiveness import StallProbe

SAMPLE_QUESTIONS = Path(__file__).resolve().parents[2] / "resources" / "sample" / "questions.jsonl"


@pytest.fixture
def training_project(project, tiny_model):
    config = project.config
    config.student.model = str(tiny_model("qwen2"))
    config.train.replay_fraction = 0.0
    config.train.batch_tokens = 256
    project.save()
    records = [{"id": f"t-{raw['id']}", "kind": "qa", "chunk_id": raw["doc"], "recipe": "qa",
                "messages": [{"role": "user", "content": raw["question"]}, {"role": "assistant", "content": raw["answer"]}]}
               for raw in map(json.loads, SAMPLE_QUESTIONS.read_text(encoding="utf-8").splitlines())]
    (project.synth_dir / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return project


def _train_page(make_window, project, max_steps: int, checkpoint_every: int):
    window = make_window()
    window.open_project(project.root)
    window.show_page(3)
    page = window.page("train")
    page.max_steps.setValue(max_steps)
    page.checkpoint_every.setValue(checkpoint_every)
    return window, page


@pytest.mark.slow
def test_cancel_keeps_a_checkpoint_and_resume_finishes(qtbot, make_window, training_project):
    from doctune.core.train.checkpoints import latest_checkpoint

    window, page = _train_page(make_window, training_project, max_steps=40, checkpoint_every=2)
    job = page.train()
    qtbot.waitUntil(lambda: len(page.losses) >= 3 or not job.running, timeout=600_000)
    probe = StallProbe()
    probe.start()
    page.progress.cancel()
    assert wait_for_job(qtbot, job, 300) == CANCELLED, job.record.log[-15:]
    assert probe.stop().longest_blocked_s < 0.1  # the window stayed responsive while the job stopped
    run_dir = next(training_project.runs_dir.iterdir())
    assert latest_checkpoint(run_dir) is not None
    assert page.resume_button.isEnabled()
    steps_before = len(page.losses)
    resumed = page.resume()
    trained: list[int] = []
    resumed.event.connect(lambda event: trained.append(event["step"]) if event.get("event") == "metric" else None)
    assert wait_for_job(qtbot, resumed, 900) == SUCCEEDED, resumed.record.log[-15:]
    assert trained and trained[0] > 1  # resumed where it stopped, not from step 1
    assert page.steps[0] == 1 and page.steps == sorted(set(page.steps))  # the curve keeps the steps before it
    assert steps_before >= 3
    assert "Last finished run" in page.last_run.text()


def test_a_preset_is_passed_to_the_job_and_leaves_the_settings_file_as_it_was(qtbot, make_window, training_project):
    from doctune.core.records import RunConfig, RunLayout

    before = training_project.config_path.read_bytes()
    window, page = _train_page(make_window, training_project, max_steps=2, checkpoint_every=100)
    page.preset.setCurrentIndex(page.preset.findData("Thorough"))
    job = page.train()
    assert wait_for_job(qtbot, job, 600) == SUCCEEDED, job.record.log[-15:]
    assert training_project.config_path.read_bytes() == before
    [run_dir] = list(training_project.runs_dir.iterdir())
    train = RunConfig.load(RunLayout(run_dir).config).train
    assert (train["epochs"], train["lora_rank"], train["learning_rate"], train["max_steps"]) == (5.0, 32, 1e-4, 2)
    assert train["batch_tokens"] == 256  # the project's own settings still apply where the preset says nothing
    from doctune.core.pipeline import _training_identity, _up_to_date_run
    from doctune.core.project import Project

    reopened = Project.open(training_project.root)  # doctune run would not train it again with the file's settings
    assert _up_to_date_run(reopened, _training_identity(reopened)) == run_dir


def test_a_killed_training_job_shows_an_error(qtbot, make_window, training_project):
    window, page = _train_page(make_window, training_project, max_steps=200, checkpoint_every=100)
    job = page.train()
    qtbot.waitUntil(lambda: bool(job.record.last_event) or not job.running, timeout=300_000)
    job.kill()
    assert wait_for_job(qtbot, job, 60) == FAILED
    assert "stopped unexpectedly" in page.progress.message.text()
    assert page.train_button.isEnabled()


def test_resume_offers_the_newest_interrupted_run_and_skips_an_unreadable_summary(make_window, project):
    window = make_window()
    window.open_project(project.root)
    page = window.page("train")
    for run_id in ("20260101-000000-aaaa", "20260102-000000-bbbb", "20260103-000000-cccc"):
        (project.runs_dir / run_id).mkdir(parents=True)
        (project.runs_dir / run_id / "config.json").write_text("{}", encoding="utf-8")
    (project.runs_dir / "20260102-000000-bbbb" / "summary.json").write_text('{"status": "complete"}', encoding="utf-8")
    (project.runs_dir / "20260103-000000-cccc" / "summary.json").mkdir()  # cannot be read: its state is unknown
    assert page._interrupted_run() == "20260101-000000-aaaa"
    (project.runs_dir / "20260104-000000-dddd").mkdir()  # started, not even its config written yet
    assert page._interrupted_run() == "20260101-000000-aaaa"
    page.refresh()
    assert page.resume_button.isEnabled()


def test_the_loss_curve_ticks_whole_steps_only(qtbot, make_window, project):
    window = make_window()
    window.open_project(project.root)
    window.show_page(3)
    page = window.page("train")
    qtbot.waitUntil(lambda: page.plot.widget is not None, timeout=30_000)
    axis = page.plot.widget.getAxis("bottom")
    for low, high in ((1, 6), (1, 3), (1, 40), (100, 2400)):
        ticks = [value for _spacing, values in axis.tickValues(low, high, 1000) for value in values]
        assert ticks and all(float(value).is_integer() for value in ticks), (low, high, ticks)


def test_a_broken_plotting_library_is_said_in_place_of_the_chart(qtbot, monkeypatch):
    import sys

    from PySide6.QtWidgets import QLabel

    from doctune.desktop.widgets import LazyPlot

    monkeypatch.setitem(sys.modules, "pyqtgraph", None)  # "import pyqtgraph" now raises ImportError
    plot = LazyPlot(lambda widget: None)
    qtbot.addWidget(plot)
    plot._build()
    assert plot.widget is None
    [label] = plot.findChildren(QLabel)
    assert "pyqtgraph failed to load" in label.text() and "bootstrap.py setup" in label.text()


def _recorded_run(project, run_id: str, losses: dict[int, float], complete: bool) -> Path:
    """A run folder as training leaves it: configuration, metrics and (when ``complete``) its summary."""
    from doctune.core.records import MetricRecord, RunConfig, RunLayout, RunSummary, write_records

    layout = RunLayout(project.runs_dir / run_id)
    layout.folder.mkdir(parents=True)
    RunConfig(run_id=run_id).save(layout.config)
    write_records(layout.metrics, [MetricRecord(time=0.0, step=step, loss=loss) for step, loss in losses.items()])
    if complete:
        layout.adapter.mkdir()
        RunSummary(status="complete", run_id=run_id, steps=max(losses), final_loss=8.26620864868164,
                   finished_at=1.0).save(layout.summary)
    return layout.folder


def test_after_a_restart_the_chart_shows_the_run_and_the_preset_is_still_chosen(qtbot, make_window, project, settings,
                                                                              screenshot_dir):
    _recorded_run(project, "20260101-000000-aaaa", {1: 9.0, 2: 8.7, 3: 8.4, 4: 8.26620864868164}, complete=True)
    window = make_window()
    window.open_project(project.root)
    page = window.page("train")
    page.preset.setCurrentIndex(page.preset.findData("Thorough"))
    window.close()

    again = make_window(settings)  # the window opened again, with the same settings
    again.resize(1024, 700)
    again.open_project(project.root)
    again.show_page(3)
    page = again.page("train")
    assert page.preset.currentData() == "Thorough"
    assert page.steps == [1.0, 2.0, 3.0, 4.0] and page.losses[-1] == pytest.approx(8.2662, abs=1e-4)
    assert "final loss 8.266," in page.last_run.text()
    qtbot.waitUntil(lambda: page.curve is not None, timeout=30_000)
    assert list(page.curve.getData()[0]) == [1.0, 2.0, 3.0, 4.0]
    again.jobs_dock.hide()
    qtbot.wait(200)
    assert again.grab().save(str(screenshot_dir / "train-after-restart-1024x700.png"))
    assert b"Thorough" not in project.config_path.read_bytes()


def test_a_resumed_run_keeps_its_curve_from_step_one(qtbot, make_window, project):
    _recorded_run(project, "20260101-000000-aaaa", {step: 10.0 - step / 4 for step in range(1, 13)}, complete=False)
    window = make_window()
    window.open_project(project.root)
    page = window.page("train")
    assert page.steps[0] == 1.0 and page.steps[-1] == 12.0  # the interrupted run's curve, before Resume
    assert "stopped at step 12: Resume continues it" in page.last_run.text()
    job = page.resume()
    assert page.steps == [float(step) for step in range(1, 13)]  # its curve so far…
    page._on_event({"event": "metric", "step": 10, "loss": 7.0})  # …then the steps after its checkpoint (9)
    assert page.steps == [float(step) for step in range(1, 11)] and page.losses[-1] == 7.0
    wait_for_job(qtbot, job, 120)  # this run has no checkpoint to go on from: the job ends, said on the page


def test_a_project_made_with_its_own_training_settings_keeps_them(make_window, project):
    """The offline check's project carries training settings for its small model; the page chooses "Project's own"
    for it (once: the user may pick a preset after), and that passes no preset over them."""
    project.config.train.learning_rate = 5e-3
    project.config.train.epochs = 10.0
    project.save()
    window = make_window()
    window.open_project(project.root)
    page = window.page("train")
    page.refresh()
    assert page.preset.currentData() == "Project's own"
    options = page.train_options()
    assert not {"--lr", "--epochs", "--lora-rank"} & set(options), options
    page.preset.setCurrentIndex(page.preset.findData("Quick"))
    page.refresh()
    assert page.preset.currentData() == "Quick"
    assert options != page.train_options() and "--lr" in page.train_options()


def test_a_student_that_recommends_its_own_settings_brings_them_and_a_broken_file_is_said(
        qtbot, make_window, project, tiny_model, tmp_path, monkeypatch):
    """Typing a student folder that carries doctune-student.json makes its training settings the project's (and
    "Project's own" the preset, so the job gets them); a folder whose file is broken starts no job and says why;
    another student takes back what the first brought, and says so."""
    import shutil

    from doctune.core.project import Project

    student = tmp_path / "student"
    shutil.copytree(tiny_model("qwen2"), student)
    (student / "doctune-student.json").write_text(json.dumps({"train": {"learning_rate": 5e-3, "epochs": 7.0}}))
    window = make_window()
    window.open_project(project.root)
    page = window.page("train")
    page.refresh()
    assert page.preset.currentData() == "Balanced"
    started = []
    monkeypatch.setattr(page, "_start", lambda args, title: started.append(args) or "job")
    page.student.setText(str(student))
    assert page.train() == "job"
    saved = Project.open(project.root).config.train
    assert (saved.learning_rate, saved.epochs, saved.lora_rank) == (5e-3, 7.0, 16)
    assert page.preset.currentData() == "Project's own" and "--lr" not in started[0]
    assert page.student_note.isVisibleTo(page) and "learning rate 0.005, epochs 7" in page.student_note.text()

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model("qwen2"), broken)
    (broken / "doctune-student.json").write_text('{"train": {"learning_rate": "fast"}}')
    page.student.setText(str(broken))
    assert page.train() is None and len(started) == 1
    assert "doctune-student.json" in page.student_note.text() and "learning_rate" in page.student_note.text()
    assert Project.open(project.root).config.student.model == str(student)  # nothing half-chosen
    page.student.setText("HuggingFaceTB/SmolLM2-360M-Instruct")  # recommends nothing: what the first brought leaves
    assert page.train() == "job" and "back to DocTune's defaults: learning rate 0.0002, epochs 3" in \
        page.student_note.text()
    saved = Project.open(project.root).config.train
    assert (saved.learning_rate, saved.epochs) == (2e-4, 3.0)
    page.student.setText(str(tiny_model("qwen2")))  # nothing to bring, nothing to take back: no note
    assert page.train() == "job" and not page.student_note.isVisibleTo(page)
