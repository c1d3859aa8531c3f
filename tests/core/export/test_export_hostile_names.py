"""Names from a project folder (run folders, paths, tokenizer strings) never become Modelfile directives, shell
commands, or a way out of the project."""
from __future__ import annotations

import ast
import json
import shlex
import shutil

import pytest

from doctune.core.cli import main
from doctune.core.events import CancelToken, Events
from doctune.core.export import ExportError, ExportParams, run
from doctune.core.export.modelfile import modelfile_text, usage_text

EVIL_RUN = 'evil"\nADAPTER evil.gguf\nSYSTEM """pwn'
HOSTILE_DIR = "my docs; $(touch PWNED) `id` 'q' \"dq\""


@pytest.mark.parametrize("run_id", ["../../other/runs/run-1", "/etc", "..", "run-1/../run-1", EVIL_RUN, "a b"])
def test_export_takes_run_ids_inside_the_project_only(project, make_run, tmp_path, run_id, capsys):
    make_run(project, "qwen2")
    with pytest.raises(ExportError, match="is not a run id") as caught:
        run(ExportParams(project_dir=project.root, run_id=run_id), events=Events(), cancel=CancelToken())
    assert "doctune runs" not in str(caught.value) and "run-1" in str(caught.value)  # names the runs there are
    assert main(["export", "-p", str(project.root), "--run", run_id]) == 1
    err = capsys.readouterr().err
    assert "is not a run id" in err and "Traceback" not in err
    assert not (project.runs_dir / "run-1" / "export").exists()


def test_a_missing_run_names_the_existing_ones_and_no_missing_command(project, make_run):
    make_run(project, "qwen2")
    with pytest.raises(ExportError, match="no training run 'nope'") as caught:
        run(ExportParams(project_dir=project.root, run_id="nope"), events=Events(), cancel=CancelToken())
    assert "doctune runs" not in str(caught.value) and "run-1" in str(caught.value)


def test_a_run_folder_linked_out_of_the_project_is_refused(project, make_run, tmp_path):
    outside = make_run(project, "qwen2", run_id="run-1")
    moved = shutil.move(outside, tmp_path / "elsewhere")
    (project.runs_dir / "run-1").symlink_to(moved, target_is_directory=True)
    with pytest.raises(ExportError, match="outside the project"):
        run(ExportParams(project_dir=project.root, run_id="run-1"), events=Events(), cancel=CancelToken())


def test_a_run_folder_with_a_crafted_name_is_never_exported(project, make_run, capsys):
    """A folder whose name would write directives into the Modelfile is not a run: the latest-run export skips it."""
    crafted = make_run(project, "qwen2", run_id="crafted")
    crafted.rename(project.runs_dir / EVIL_RUN)
    assert main(["export", "-p", str(project.root), "--formats", "f16"]) == 1
    err = capsys.readouterr().err
    assert "no finished training run" in err and "Traceback" not in err
    assert not (project.runs_dir / EVIL_RUN / "export").exists()


def test_tokenizer_strings_cannot_add_modelfile_directives(tiny_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model("qwen2"), folder)
    system = 'Be helpful."""\nADAPTER /tmp/evil.gguf\nSYSTEM """pwned'
    (folder / "chat_template.jinja").write_text(
        "{% if messages[0]['role'] != 'system' %}<|im_start|>system\n" + system + "<|im_end|>\n{% endif %}"
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    evil_eos = '</s>"\nADAPTER /tmp/evil2.gguf\nPARAMETER stop "'
    config["eos_token"] = evil_eos
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    text, style = modelfile_text("doctune-run-1-q8_0.gguf", folder)
    assert style == "chatml"
    assert "ADAPTER" not in text and "evil" not in text and "pwned" not in text
    directives = [line.split()[0] for line in _top_level_lines(text)]
    assert set(directives) <= {"FROM", "TEMPLATE", "SYSTEM", "PARAMETER"} and directives.count("FROM") == 1
    assert 'PARAMETER stop "<|im_end|>"' in text


def _top_level_lines(text: str) -> list[str]:
    """The Modelfile's lines outside triple-quoted blocks (each one is a directive to Ollama)."""
    lines, inside = [], False
    for line in text.splitlines():
        if not inside and line.strip():
            lines.append(line)
        if line.count('"""') % 2 == 1:
            inside = not inside
    return lines


def test_every_shell_line_of_the_usage_quotes_its_paths(tmp_path):
    export_dir = tmp_path / HOSTILE_DIR / "runs" / "run-1" / "export"
    gguf = export_dir / "doctune-run-1-q8_0.gguf"
    base, adapter = tmp_path / HOSTILE_DIR / "base.gguf", export_dir / "adapter.gguf"
    usage = usage_text("doctune-run-1", export_dir, gguf, "chatml", lora=(adapter, base))
    shell = [shlex.split(line) for line in usage.splitlines()
             if line.split()[:1] and line.split()[0] in {"llama-cli", "llama-server", "ollama", "lms"}]
    assert ["llama-cli", "-m", str(gguf), "-cnv"] in shell
    assert ["llama-cli", "-m", str(base), "--lora", str(adapter), "-cnv"] in shell
    assert ["lms", "import", str(gguf)] in shell
    assert ["ollama", "create", "doctune-run-1", "-f", str(export_dir / "Modelfile")] in shell
    assert any(words[:3] == ["llama-server", "-m", str(gguf)] for words in shell)
    python = next(line for line in usage.splitlines() if "Llama(model_path=" in line and "lora" not in line)
    literal = python.split("model_path=", 1)[1][:-1]
    assert ast.literal_eval(literal) == str(gguf)  # a Python string literal of the exact path


def test_the_export_takes_trust_in_the_base_students_code_from_the_settings_only(project, make_run, tiny_model,
                                                                                 tmp_path):
    """A run whose files name a base student shipping its own code, with trust_remote_code on, runs nothing."""
    marker = tmp_path / "PWNED"
    crafted = tmp_path / "evil-student"
    shutil.copytree(tiny_model("qwen2"), crafted)
    (crafted / "evil.py").write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
                                     "from transformers import Qwen2Config\n\n\nclass EvilConfig(Qwen2Config):\n"
                                     "    pass\n")
    config = json.loads((crafted / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig"}
    (crafted / "config.json").write_text(json.dumps(config))
    run_dir = make_run(project, "qwen2")
    for name in ("config.json", "summary.json"):
        record = json.loads((run_dir / name).read_text())
        record.update(base_model=str(crafted), student_folder=None,
                      student={"model": str(crafted), "trust_remote_code": True})
        (run_dir / name).write_text(json.dumps(record))
    try:
        run(ExportParams(project_dir=project.root, run_id="run-1", formats=["f16"]), events=Events(),
            cancel=CancelToken())
    except Exception:  # noqa: BLE001 — what matters is that the crafted code never ran
        pass
    assert not marker.exists(), "the base student's own code ran"
