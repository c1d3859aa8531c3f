"""Chat systems on a tiny GGUF through llama.cpp: streaming, sources, budgets, scoring, bad files, CLI."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
from run_folders import finished_run

from doctune.core.chat import ModelFileError, NoBaseModel, QuestionTooLong, open_system
from doctune.core.cli import main

ANSWER_TOKENS = 16


@pytest.fixture
def short_answers(pdf_project):
    settings = pdf_project.config.rag
    saved = (settings.max_answer_tokens, settings.n_ctx)
    settings.max_answer_tokens = ANSWER_TOKENS
    yield pdf_project
    settings.max_answer_tokens, settings.n_ctx = saved


def test_closed_book_answer_streams_with_timings(short_answers, chat_gguf):
    system = open_system(short_answers, str(chat_gguf))
    pieces = list(system.stream("When was the Grellan Point lighthouse first lit?"))
    answer = system.last_answer
    assert pieces and "".join(pieces) == answer.text
    assert answer.sources == [] and answer.system == str(chat_gguf)
    assert 1 <= answer.completion_tokens <= ANSWER_TOKENS
    assert 0 < answer.ttft_s <= answer.total_s
    prompt = system.prompt("When was the Grellan Point lighthouse first lit?")
    assert answer.context_tokens == system.backend.count_messages(prompt.messages)
    system.close()


def test_rag_answer_cites_the_chunks_that_were_in_the_prompt(short_answers, chat_gguf):
    system = open_system(short_answers, f"{chat_gguf}+rag")
    question = "How far away can the Grellan Point lamp be seen?"
    answer = system.answer(question)
    rendered = system.backend.render(system.prompt(question).messages)
    assert answer.sources, "retrieval found nothing"
    for number, source in enumerate(answer.sources, 1):
        assert f"[{number}] {source.label}\n{source.text.strip()}" in rendered
    lamp = next(source for source in answer.sources if "31 kilometres" in source.text)
    assert lamp.doc_path.endswith("lighthouse.pdf") and lamp.page_start <= 2 <= lamp.page_end
    assert lamp.doc_title and "p." in lamp.label
    railway = [source for source in answer.sources if "1903" in source.text]
    assert all(source.doc_path.endswith("railway.pdf") and source.page_start <= 2 <= source.page_end for source in railway)
    system.close()


def test_long_history_and_chunks_stay_inside_the_context(short_answers, chat_gguf):
    short_answers.config.rag.n_ctx = 256
    system = open_system(short_answers, f"{chat_gguf}+rag")
    history = [{"role": role, "content": "The lamp and the railway and the tunnels. " * 30}
               for role in ("user", "assistant") * 6]
    answer = system.answer("Who built the Brass Hen locomotive and when?", history=history)
    assert system.backend.n_ctx == 256
    assert answer.context_tokens + system.max_answer_tokens <= 256
    assert answer.context_tokens + answer.completion_tokens <= 256
    with pytest.raises(QuestionTooLong, match="too long"):
        list(system.stream("Why? " * 400))
    system.close()


def test_option_logprob_is_a_finite_log_probability_independent_of_order(short_answers, chat_gguf):
    system = open_system(short_answers, str(chat_gguf))
    question = "Who kept the Grellan Point lighthouse?"
    first = [system.option_logprob(question, option) for option in ("Tomas Vey", "Anna Brill")]
    again = [system.option_logprob(question, option) for option in ("Anna Brill", "Tomas Vey")][::-1]
    assert all(math.isfinite(value) and value < 0 for value in first)
    assert first == pytest.approx(again, abs=1e-2)
    messages = system.prompt(question).messages
    assert system.option_logprob(messages, "Tomas Vey") == pytest.approx(first[0], abs=1e-2)
    system.close()


def test_missing_and_corrupt_gguf_files_are_named(project, tmp_path, chat_gguf):
    missing = tmp_path / "nowhere.gguf"
    with pytest.raises(ModelFileError, match="not found") as caught:
        open_system(project, str(missing))
    assert str(missing) in str(caught.value)
    text = tmp_path / "notes.gguf"
    text.write_text("these are not weights")
    with pytest.raises(ModelFileError, match="not a GGUF") as caught:
        open_system(project, str(text))
    assert str(text) in str(caught.value)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(chat_gguf.read_bytes()[:4096])
    with pytest.raises(ModelFileError, match="could not be loaded") as caught:
        open_system(project, str(truncated))
    assert str(truncated) in str(caught.value)
    assert main(["ask", "Hello?", "-p", str(project.root), "--model", str(missing)]) == 1


def test_rag_on_a_project_without_index_says_how_to_build_it(project, chat_gguf, capsys):
    assert main(["ask", "Hello?", "-p", str(project.root), "--model", str(chat_gguf), "--rag", "--events", "jsonl"]) == 1
    error = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert error["event"] == "error" and f"doctune index -p {project.root}" in error["message"]


def _last_event(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_ask_and_compare_end_to_end(short_answers, chat_gguf, capsys):
    root = str(short_answers.root)
    question = "When was the Brass Hen built?"
    assert main(["ask", question, "-p", root, "--model", str(chat_gguf), "--rag", "-k", "2", "--events", "jsonl"]) == 0
    done = _last_event(capsys)
    assert done["event"] == "done" and done["answer"] and 1 <= len(done["sources"]) <= 2
    assert done["sources"][0]["doc_path"].endswith(".pdf") and done["context_tokens"] > 0

    systems = f"{chat_gguf},{chat_gguf}+rag"
    assert main(["compare", question, "-p", root, "--systems", systems, "--events", "jsonl"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    done = json.loads(out[-1])
    assert [a["system"] for a in done["answers"]] == [str(chat_gguf), f"{chat_gguf}+rag"]
    assert done["answers"][0]["sources"] == [] and done["answers"][1]["sources"]
    assert done["answers"][1]["context_tokens"] > done["answers"][0]["context_tokens"]
    metrics = [json.loads(line) for line in out if '"metric"' in line]
    assert len(metrics) == 2 and all(m["ttft_s"] > 0 for m in metrics)

    assert main(["compare", question, "-p", root, "--systems", systems]) == 0
    human = capsys.readouterr().out
    assert "first token" in human and "tokens/s" in human and "context" in human


def test_tuned_without_an_exported_model_says_what_to_run(project):
    from doctune.core.chat import NoTunedModel, SystemNameError

    with pytest.raises(NoTunedModel, match="doctune export"):
        open_system(project, "tuned")
    with pytest.raises(SystemNameError, match="base, tuned, base\\+rag"):
        open_system(project, "biggest+rag")


def test_cli_refuses_a_question_longer_than_the_context(project, chat_gguf, capsys):
    question = "Why is the lamp so bright? " * 1500
    assert main(["ask", question, "-p", str(project.root), "--model", str(chat_gguf), "--events", "jsonl"]) == 1
    error = _last_event(capsys)
    assert error["event"] == "error" and "too long" in error["message"] and "rag.n_ctx" in error["message"]


@pytest.mark.slow
def test_base_system_is_the_student_exported_once(pdf_project, tiny_model):
    pdf_project.config.student.model = str(tiny_model("qwen2"))
    pdf_project.config.rag.max_answer_tokens = ANSWER_TOKENS
    with pytest.raises(NoBaseModel, match="not been exported") as missing:  # opening a chat never exports
        open_system(pdf_project, "base")
    assert "doctune export --base" in missing.value.hint
    pdf_project.save()
    assert main(["export", "--base", "-p", str(pdf_project.root)]) == 0  # the step that makes it, once
    backends: dict = {}
    base = open_system(pdf_project, "base", backends=backends)
    with_rag = open_system(pdf_project, "base+rag", backends=backends)
    assert base.backend is with_rag.backend and len(backends) == 1
    assert base.backend.path.suffix == ".gguf" and (pdf_project.root / "cache") in base.backend.path.parents
    closed, grounded = base.answer("Who kept the lighthouse?"), with_rag.answer("Who kept the lighthouse?")
    assert closed.sources == [] and grounded.sources and grounded.context_tokens > closed.context_tokens
    base.close()


def test_tuned_falling_back_to_an_older_run_says_so(project, chat_gguf):
    from doctune.core.chat.system import model_path
    from doctune.core.events import Events, RecordingSink

    project.config.rag.gguf_format = "q8_0"
    finished_run(project, "run-a", 1000.0, gguf=chat_gguf)
    sink = RecordingSink()
    assert model_path(project, "tuned", events=Events(sink)).parent.parent.name == "run-a"
    assert sink.of("warning") == []

    finished_run(project, "run-b", 2000.0)  # newer, but its export never passed verification
    assert model_path(project, "tuned", events=Events(sink)).parent.parent.name == "run-a"
    [warning] = sink.of("warning")
    assert "run run-a" in warning["message"] and "run-b" in warning["message"]
    assert f"doctune export -p {project.root} --run run-b" in warning["message"]

    finished_run(project, "run-c", 3000.0, gguf=chat_gguf)  # the newest run, exported …
    manifest = project.runs_dir / "run-a" / "export" / "manifest.json"  # … then run-a's export re-stamped later
    stamped = manifest.read_text().replace('"finished_at": 1001.0', '"finished_at": 9999.0')
    assert '9999' in stamped
    manifest.write_text(stamped)
    sink = RecordingSink()
    assert model_path(project, "tuned", events=Events(sink)).parent.parent.name == "run-c"
    assert sink.of("warning") == []


def test_the_evaluation_scores_rag_on_the_prompt_chat_gives(pdf_project, chat_gguf):
    """A one-letter answer limit must not buy the evaluated system more sources than chat shows the user."""
    from doctune.core.evaluate import EvalParams, open_eval
    from doctune.core.evaluate import run as evaluate
    from doctune.core.evaluate.step import mc_prompt
    from doctune.core.events import CancelToken, Events

    settings = pdf_project.config
    saved = (settings.rag.max_answer_tokens, settings.rag.n_ctx, settings.eval.mc_answer_tokens)
    settings.rag.n_ctx, settings.rag.max_answer_tokens, settings.eval.mc_answer_tokens = 512, 256, 4
    questions = [{"id": f"q{i}", "kind": "mc", "question": question, "options": options, "answer": "A",
                  "reference": options[0], "doc_id": "d", "chunk_id": "d-0", "source_text": options[0]}
                 for i, (question, options) in enumerate([
                     ("Who kept the Grellan Point lighthouse?", ["Tomas Vey", "Brass Hen", "Kessbury", "Grellan"]),
                     ("How many tunnels does the Kessbury Ridge railway have?", ["eleven", "31", "640", "1903"])])]
    pdf_project.eval_dir.mkdir(parents=True, exist_ok=True)
    (pdf_project.eval_dir / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    try:
        pdf_project.save()
        result = evaluate(EvalParams(project_dir=pdf_project.root, systems=[f"{chat_gguf}+rag"], judge=False),
                          events=Events(), cancel=CancelToken())
        chat = open_system(pdf_project, f"{chat_gguf}+rag")
        for record in open_eval(pdf_project, result.eval_id).results():
            question = next(q for q in questions if q["id"] == record["question_id"])
            answer = chat.answer(mc_prompt(SimpleNamespace(**question)))
            assert [s["chunk_id"] for s in record["sources"]] == [hit.chunk_id for hit in answer.sources]
            assert record["context_tokens"] == answer.context_tokens <= 512 - 256
            assert record["completion_tokens"] <= 4
        chat.close()
    finally:
        settings.rag.max_answer_tokens, settings.rag.n_ctx, settings.eval.mc_answer_tokens = saved
        pdf_project.save()
