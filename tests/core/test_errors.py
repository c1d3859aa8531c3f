"""One message source, two forms of advice: the CLI's words stay the CLI's; the window gets its own."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from doctune.core import cli
from doctune.core.errors import UserError, event_window_text, exception_window_text, window_text
from doctune.core.events import Cancelled
from doctune.core.exitcodes import ExitCode

CORE = Path(__file__).resolve().parents[2] / "core"


class _Problem(UserError):
    pass


def test_the_cli_text_is_unchanged_and_the_window_text_drops_the_cli_hint():
    exc = _Problem("No items.", "Generate items with 'doctune synth'.", window_hint="Press Generate on the "
                   "Synthesize page.")
    assert str(exc) == "No items. — Generate items with 'doctune synth'."
    assert exception_window_text(exc) == "No items. Press Generate on the Synthesize page."
    # without a window form the CLI hint is kept: better a command than no advice
    assert exception_window_text(_Problem("No items.", "Run X.")) == "No items. — Run X."
    assert window_text("Cannot read a.pdf", "Install Y.") == "Cannot read a.pdf. Install Y."
    assert event_window_text({"message": "x — doctune y", "hint": "doctune y", "window_hint": "Press Y."}) == "x. Press Y."
    assert event_window_text({"message": "say it the CLI way", "window_message": "say it the window way"}) == \
        "say it the window way"


def test_the_cli_prints_its_own_hint_once_and_its_events_carry_both_forms(tmp_path, capfd):
    from doctune.core.project import Project

    root = Project.create(tmp_path / "p").root
    assert cli.main(["train", "-p", str(root)]) == ExitCode.ERROR
    out, err = capfd.readouterr()
    printed = " ".join((out + err).split())
    assert printed.count("Generate items with 'doctune synth', or pass --items FILE") == 1
    assert "Synthesize page" not in printed

    assert cli.main(["--events", "jsonl", "train", "-p", str(root)]) == ExitCode.ERROR
    final = json.loads(capfd.readouterr().out.strip().splitlines()[-1])
    assert final["fatal"] and final["message"].endswith(" — " + final["hint"])
    assert "doctune synth" in final["hint"]
    assert "Synthesize page" in final["window_hint"] and "doctune" not in final["window_hint"]
    assert "Synthesize page" in event_window_text(final) and "doctune synth" not in event_window_text(final)


def test_a_cancelled_command_says_re_run_on_the_cli_and_run_the_step_again_in_the_window(monkeypatch, capsys):
    def stopped(context):
        raise Cancelled()

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser.set_defaults(handler=stopped)
    assert cli.main(["--events", "jsonl"]) == ExitCode.CANCELLED
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert final["event"] == "cancelled" and "re-run" in final["message"]
    assert "Run the step again" in event_window_text(final) and "command" not in event_window_text(final)


COMMAND_WORDS = re.compile(r"doctune [a-z]|--[a-z]| -p |\[[a-z]+\] [a-z_]+ =")


def _window_words() -> list[tuple[str, str]]:
    """Every literal window_hint= / window_message= in core (f-string parts included)."""
    found = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg in ("window_hint", "window_message"):
                parts = [n.value for n in ast.walk(node.value) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
                if parts:  # a name (a module constant such as search.RESCAN) is checked where it is written
                    found.append((f"{path.name}:{node.value.lineno}", "".join(parts)))
    return found


def test_window_words_name_pages_and_buttons_not_commands():
    found = _window_words()
    assert len(found) >= 20
    for where, text in found:
        assert not COMMAND_WORDS.search(text), f"{where}: {text}"
        assert "page" in text or "Run the step again" in text or "the window has no" in text, f"{where}: {text}"
