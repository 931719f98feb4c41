"""lamini_lm.generate: the right wrapper per family, batched answers equal one-by-one answers."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

import lamini_lm
from lamini_lm.inference import _response_only
from lamini_lm.prompts import ALPACA_WRAPPER

INSTRUCTIONS = ["Name three primary colours.", "Add 2 and 3 and explain the sum in detail, please."]


def _manual(model, tokenizer, prompt, n):
    ids = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=n, pad_token_id=tokenizer.pad_token_id)
    if not model.config.is_encoder_decoder:
        out = out[:, ids["input_ids"].shape[1] :]
    return tokenizer.decode(out[0], skip_special_tokens=True).strip()


def test_causal_student_sees_the_alpaca_wrapper_and_answers_after_response(tiny_gpt2):
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2)
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2)
    got = lamini_lm.generate(model, INSTRUCTIONS, tokenizer=tokenizer, max_new_tokens=6, batch_size=2)
    assert tokenizer.padding_side == "right"  # the caller's tokenizer is left as it was
    # Left padding in a batch gives what each wrapped prompt gives alone.
    expected = [_manual(model, tokenizer, ALPACA_WRAPPER.format(instruction=i), 6) for i in INSTRUCTIONS]
    assert got == [_response_only(e) for e in expected]
    assert all("Below is an instruction" not in g for g in got)


def test_seq2seq_student_sees_the_raw_instruction(tiny_t5):
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5)
    tokenizer = AutoTokenizer.from_pretrained(tiny_t5)
    got = lamini_lm.generate(tiny_t5, INSTRUCTIONS, max_new_tokens=6)  # a path: loaded with the right Auto class
    assert got == [_manual(model, tokenizer, i, 6) for i in INSTRUCTIONS]


@pytest.mark.parametrize("fixture", ["tiny_t5", "tiny_gpt2"])
def test_one_string_in_one_string_out(fixture, request):
    path = request.getfixturevalue(fixture)
    one = lamini_lm.generate(path, INSTRUCTIONS[0], max_new_tokens=4)
    assert isinstance(one, str) and [one] == lamini_lm.generate(path, INSTRUCTIONS[:1], max_new_tokens=4)


def test_response_only_stops_at_a_new_turn():
    assert _response_only(" Red, yellow, blue.\n\n### Instruction:\nmore") == "Red, yellow, blue."
