"""A student folder's recommended training settings: taken when the student is chosen, under explicit choices."""
from __future__ import annotations

import json

import pytest

from doctune.core.config import ConfigError, ProjectConfig
from doctune.core.students import SETTINGS_FILE, choose_student, describe_changes, recommended_train
from doctune.core.train.params import TrainParams, resolve_settings


@pytest.fixture
def recommending(tmp_path):
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / SETTINGS_FILE).write_text(json.dumps({"train": {"learning_rate": 5e-3, "lora_rank": 64},
                                                    "why": "a small model trained from scratch"}))
    return folder


def test_choosing_a_student_takes_its_settings_and_says_which_changed(recommending):
    config = ProjectConfig()
    config.train.lora_rank = 64  # already what it recommends: not a change
    changed = choose_student(config, str(recommending))
    assert config.student.model == str(recommending)
    assert (config.train.learning_rate, config.train.lora_rank, config.train.epochs) == (5e-3, 64, 3.0)
    assert changed == {"learning_rate": 5e-3} and describe_changes(changed) == "learning rate 0.005"


def test_a_hub_id_or_a_folder_without_recommendations_keeps_the_settings(tmp_path):
    for model in ("HuggingFaceTB/SmolLM2-360M-Instruct", str(tmp_path), ""):
        config = ProjectConfig()
        assert choose_student(config, model) == {} and config.train == ProjectConfig().train


def test_settings_a_student_brought_leave_with_it_unless_the_user_changed_them(recommending, tmp_path):
    config = ProjectConfig()
    choose_student(config, str(recommending))
    config.train.lora_rank = 128  # the user's own choice after choosing the student
    changed = choose_student(config, "HuggingFaceTB/SmolLM2-360M-Instruct")
    assert changed == {"learning_rate": 2e-4} and config.train.learning_rate == ProjectConfig().train.learning_rate
    assert config.train.lora_rank == 128

    other = tmp_path / "other"
    other.mkdir()
    (other / SETTINGS_FILE).write_text(json.dumps({"train": {"learning_rate": 1e-3}}))
    choose_student(config, str(recommending))
    assert choose_student(config, str(other)) == {"learning_rate": 1e-3, "lora_rank": 16}  # 64 was the reader's
    assert choose_student(config, str(other)) == {}  # the same student again: nothing moves
    assert config.student.brought == {"learning_rate": 1e-3}  # kept in the project, not read back from the folder


def test_what_a_student_brought_leaves_with_it_though_its_folder_changed_since(recommending):
    config = ProjectConfig()
    choose_student(config, str(recommending))
    (recommending / SETTINGS_FILE).write_text(json.dumps({"train": {"learning_rate": 3e-3}}))  # a newer build
    assert choose_student(config, "HuggingFaceTB/SmolLM2-360M-Instruct") == {"learning_rate": 2e-4, "lora_rank": 16}


@pytest.mark.parametrize("text,words", [
    ("{not json", "cannot be read as JSON"),
    ('{"epochs": 5}', "needs a 'train' object"),
    ('{"train": {"learning_rate": "fast"}}', "learning_rate"),
    ('{"train": {"epoch": 5}}', "unknown setting 'epoch'"),
    ('{"train": {"epochs": 5, "device": "cuda"}}', "'device', which is this computer's choice"),
    ('{"schema_version": 2, "train": {"epochs": 5}}', "written for a newer DocTune"),
])
def test_a_broken_recommendations_file_is_refused_naming_the_file_and_the_problem(recommending, text, words):
    (recommending / SETTINGS_FILE).write_text(text)
    config = ProjectConfig()
    with pytest.raises(ConfigError, match=words) as raised:
        choose_student(config, str(recommending))
    assert SETTINGS_FILE in str(raised.value)
    assert config.student.model == "" and config.train == ProjectConfig().train  # nothing half-applied


def test_a_run_on_another_student_takes_its_settings_under_the_runs_own_options(tmp_path, recommending):
    project = ProjectConfig()
    params = TrainParams(project_dir=tmp_path, student={"model": str(recommending)}, train={"lora_rank": 8})
    _, train = resolve_settings(project.student, project.train, params)
    assert (train.learning_rate, train.lora_rank) == (5e-3, 8)
    choose_student(project, str(recommending))
    project.train.learning_rate = 1e-3  # changed by the user after choosing it: the project's value stands
    _, train = resolve_settings(project.student, project.train, params)
    assert train.learning_rate == 1e-3
    assert recommended_train(str(recommending)) == {"learning_rate": 5e-3, "lora_rank": 64}


def test_recommended_values_are_the_settings_types_so_an_equal_value_is_no_change(recommending):
    (recommending / SETTINGS_FILE).write_text('{"train": {"epochs": 3, "learning_rate": "0.005"}}')
    config = ProjectConfig()
    assert choose_student(config, str(recommending)) == {"learning_rate": 5e-3}  # 3 is the default 3.0
    assert isinstance(config.train.epochs, float)
