"""The test kit itself: tiny models load and generate, and the real OpenAI-compatible teacher answers."""

import pytest


def test_tiny_models_load_and_generate(tiny_gpt2, tiny_t5):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    for cls, path in ((AutoModelForCausalLM, tiny_gpt2), (AutoModelForSeq2SeqLM, tiny_t5)):
        tok = AutoTokenizer.from_pretrained(path)
        model = cls.from_pretrained(path)
        assert sum(p.numel() for p in model.parameters()) < 100_000
        ids = tok("Name a colour.", return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=4, do_sample=False)
        assert out.shape[-1] >= 1
        assert tok.chat_template and tok.eos_token == "</s>" and tok.pad_token == "<pad>"


def test_tokenizer_roundtrips_any_text(tiny_tokenizer):
    text = "Ünïcödé, emoji 🙂 and {braces} <example>x</example>"
    assert tiny_tokenizer.decode(tiny_tokenizer(text)["input_ids"]) == text


@pytest.mark.integration
def test_teacher_server_answers_chat(teacher_server):
    import openai

    client = openai.OpenAI(base_url=teacher_server.base_url, api_key="not-needed")
    r = client.chat.completions.create(
        model=teacher_server.model,
        messages=[{"role": "user", "content": "Name a colour."}],
        max_tokens=8,
    )
    assert r.choices[0].finish_reason in {"stop", "length"}
    assert r.usage.completion_tokens >= 1 and r.usage.prompt_tokens > 0
