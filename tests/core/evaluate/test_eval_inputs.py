"""Bad inputs to doctune eval / report, each answered with a plain message."""
from __future__ import annotations

import json

import pytest

from doctune.core.cli import main
from doctune.core.evaluate import EvalParams, NoQuestionsError, run
from doctune.core.events import CancelToken, Events


def events_of(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_no_questions_says_which_command_makes_them(project):
    with pytest.raises(NoQuestionsError) as caught:
        run(EvalParams(project_dir=project.root), events=Events(), cancel=CancelToken())
    message = str(caught.value)
    assert "No held-out questions" in message and "questions.jsonl" in message
    assert f"doctune synth --eval -p {project.root}" in message


def test_questions_failing_the_schema_are_counted_in_the_message(project):
    (project.eval_dir / "questions.jsonl").write_text('{"id": "q1", "kind": "mc", "question": "?", "answer": "Z"}\n')
    with pytest.raises(NoQuestionsError, match="1 record\\(s\\) failed the schema"):
        run(EvalParams(project_dir=project.root), events=Events(), cancel=CancelToken())


def test_unknown_system_is_a_usage_error(project, capsys):
    code = main(["eval", "-p", str(project.root), "--systems", "base,gpt5", "--events", "jsonl"])
    assert code == 1
    (error,) = [e for e in events_of(capsys) if e["event"] == "error"]
    assert "unknown system 'gpt5'" in error["message"]


def test_report_without_an_evaluation_says_how_to_make_one(project):
    from doctune.core.evaluate import EvalNotFoundError, report

    with pytest.raises(EvalNotFoundError, match="No finished evaluation.*doctune eval -p"):
        report(project)
