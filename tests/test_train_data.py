"""Tokenisation, label masking and truncation of both recipe families, to the token."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from lamini_lm.prompts import ALPACA_WRAPPER, wrap_instruction
from lamini_lm.train.data import DataCollatorForRecipes, tokenize_causal, tokenize_seq2seq


@pytest.fixture(scope="module")
def tok(tiny_tokenizer):
    return tiny_tokenizer


def ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_causal_masks_every_prompt_token_and_keeps_response(tok):
    row = tokenize_causal(tok, "Name a fruit.", "An apple.", max_length=512)
    prompt = ids(tok, ALPACA_WRAPPER.format(instruction="Name a fruit."))
    answer = ids(tok, "An apple.") + [tok.eos_token_id]
    assert row["input_ids"] == prompt + answer
    assert row["labels"] == [-100] * len(prompt) + answer
    assert row["prompt_length"] == len(prompt)
    assert not row["prompt_truncated"] and not row["response_truncated"]


def test_causal_prompt_is_the_alpaca_wrapper_without_trailing_newline(tok):
    row = tokenize_causal(tok, "Say hi.", "Hi.", max_length=512)
    prompt_text = tok.decode(row["input_ids"][: row["prompt_length"]])
    assert prompt_text == wrap_instruction("Say hi.", "causal")
    assert prompt_text.endswith("### Response:")


def test_seq2seq_uses_raw_instruction_and_full_labels(tok):
    row = tokenize_seq2seq(tok, "Name a fruit.", "An apple.", 512, 512)
    assert row["input_ids"] == ids(tok, "Name a fruit.") + [tok.eos_token_id]
    assert row["labels"] == ids(tok, "An apple.") + [tok.eos_token_id]
    assert -100 not in row["labels"]


def test_long_response_is_cut_but_keeps_eos(tok):
    response = " ".join(["apple"] * 400)
    row = tokenize_causal(tok, "List apples.", response, max_length=160)
    assert len(row["input_ids"]) == 160
    assert row["input_ids"][-1] == tok.eos_token_id and row["labels"][-1] == tok.eos_token_id
    assert row["response_truncated"] and not row["prompt_truncated"]
    s2s = tokenize_seq2seq(tok, "List apples.", response, 32, 16)
    assert len(s2s["labels"]) == 16 and s2s["labels"][-1] == tok.eos_token_id and s2s["response_truncated"]


def test_long_instruction_is_cut_but_keeps_response_marker_and_response(tok):
    instruction = " ".join(["banana"] * 300)
    row = tokenize_causal(tok, instruction, "Yellow.", max_length=80)
    assert len(row["input_ids"]) <= 80 and row["prompt_truncated"] and not row["response_truncated"]
    prompt = tok.decode(row["input_ids"][: row["prompt_length"]])
    assert prompt.startswith("Below is an instruction") and prompt.endswith("### Response:")
    answer = ids(tok, "Yellow.") + [tok.eos_token_id]
    assert row["labels"][row["prompt_length"] :] == answer


def test_collator_pads_dynamically_with_minus_100_labels(tok):
    rows = [tokenize_causal(tok, "a", "b", 512), tokenize_causal(tok, "a longer one here", "and a longer answer", 512)]
    batch = DataCollatorForRecipes(tok)(rows)
    longest = max(len(r["input_ids"]) for r in rows)
    assert batch["input_ids"].shape == (2, longest)
    assert "length" not in batch
    short = len(rows[0]["input_ids"])
    assert (batch["labels"][0, short:] == -100).all()
    assert (batch["attention_mask"][0, short:] == 0).all()


def test_tokenizer_without_eos_is_refused(tiny_gpt2, tmp_path):
    from lamini_lm.train import load_recipe

    tok = AutoTokenizer.from_pretrained(tiny_gpt2)
    tok.eos_token = None
    tok.save_pretrained(tmp_path / "tok")
    recipe = load_recipe(
        family="causal", model_name_or_path=str(tiny_gpt2), tokenizer_name_or_path=str(tmp_path / "tok")
    )
    with pytest.raises(ValueError, match="no EOS"):
        recipe.load_tokenizer()
