"""A tiny student that learned fictional QA keeps its answers through the export."""
from __future__ import annotations

import pytest

from doctune.core.events import CancelToken, Events
from doctune.core.export import ExportParams, run
from doctune.core.export.folder import read_manifest


def _merged_answers(merged_dir, questions):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    model = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    answers = []
    for question in questions:
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                               add_generation_prompt=True)
        ids = torch.tensor([tokenizer.encode(prompt, add_special_tokens=False)])
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=32, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                                 pad_token_id=tokenizer.pad_token_id)
        answers.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip())
    return answers


def _gguf_answers(path, questions):
    from doctune.core.llamacpp import load_llama

    llm = load_llama(path, n_ctx=512, n_threads=2, seed=0)
    answers = []
    for question in questions:
        reply = llm.create_chat_completion(messages=[{"role": "user", "content": question}], max_tokens=32,
                                           temperature=0.0)
        assert reply["choices"][0]["finish_reason"] == "stop"
        answers.append(reply["choices"][0]["message"]["content"].strip())
    llm.close()
    return answers


@pytest.mark.slow
def test_trained_answers_survive_q8_0(project, make_run, qa_pairs):
    make_run(project, "qwen2", steps=100)  # tied embeddings, trained in full: the trickiest merge
    result = run(ExportParams(project_dir=project.root, formats=["q8_0"]), events=Events(), cancel=CancelToken())
    assert result.ready == {"q8_0": True}
    eot = read_manifest(result.export_dir)["files"]["q8_0"]["verification"]["checks"]["end_of_turn"]
    assert eot["model_stops"] and eot["stops"]  # the trained model ends its turn, and so does the file
    questions = [q for q, _ in qa_pairs]
    expected = [a for _, a in qa_pairs]
    merged = _merged_answers(result.export_dir / "merged", questions)
    exported = _gguf_answers(result.files["q8_0"], questions)
    merged_exact = sum(m == e for m, e in zip(merged, expected))
    exported_exact = sum(g == e for g, e in zip(exported, expected))
    assert merged_exact >= len(qa_pairs) // 2, merged  # the student really learned them
    assert exported_exact >= merged_exact - 1, (merged, exported)
    assert sum(g == m for g, m in zip(exported, merged)) >= len(qa_pairs) - 1, (merged, exported)
