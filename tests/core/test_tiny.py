import pytest

from doctune.core.tiny import FAMILIES


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_model_loads_and_generates(tiny_model, family):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_model(family)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.model_type == family
    assert model.config.vocab_size >= len(tokenizer)
    assert 1_000_000 < model.num_parameters() < 10_000_000
    assert (folder / "model.safetensors").exists()
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Where is the lighthouse?"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt.endswith("<|im_start|>assistant\n")
    inputs = tokenizer(prompt, return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert output.shape[1] == inputs["input_ids"].shape[1] + 5 or tokenizer.eos_token_id in output[0].tolist()


def test_tiny_tokenizer_has_chat_specials(tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model("qwen2"))
    for special in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        assert len(tokenizer.encode(special, add_special_tokens=False)) == 1
    text = "The ferry leaves at 07:45 from pier 12."
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text


def test_same_family_and_seed_builds_identical_weights(tmp_path, tiny_model):
    from safetensors.numpy import load_file

    from doctune.core.tiny import ensure_tiny_model

    rebuilt = ensure_tiny_model("qwen2", tmp_path)
    cached = tiny_model("qwen2")
    a, b = load_file(rebuilt / "model.safetensors"), load_file(cached / "model.safetensors")
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a)
