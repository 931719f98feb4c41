"""Dialogue tokenisation in the family records: the loss on every assistant turn and nothing else (decoder-only,
chat template or the Alpaca wrapper extended turn by turn), (history -> next turn) rows for encoder-decoders."""

from __future__ import annotations

import copy

import pytest

from lamini_lm.families import IGNORE_INDEX, get_family, lengths
from training_kit import tiny_args

DIALOGUE = [
    {"role": "user", "content": "Name three primary colours."},
    {"role": "assistant", "content": "Red, yellow and blue."},
    {"role": "user", "content": "Which one is warm?"},
    {"role": "assistant", "content": "Red and yellow are warm colours."},
    {"role": "user", "content": "Translate the sentence into French."},
    {"role": "assistant", "content": "Le chat dort."},
]
ANSWERS = [m["content"] for m in DIALOGUE if m["role"] == "assistant"]


def labelled_runs(tokenizer, row) -> tuple[list[str], str]:
    """The decoded runs of consecutive trainable tokens, and the decoded whole row; checks labels token by token:
    each is either -100 or the input token itself."""
    runs, current = [], []
    for tok, label in zip(row["input_ids"], row["labels"]):
        assert label in (IGNORE_INDEX, tok)
        if label == IGNORE_INDEX:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(tok)
    if current:
        runs.append(current)
    return [tokenizer.decode(r) for r in runs], tokenizer.decode(row["input_ids"])


def test_chat_template_dialogue_trains_on_every_assistant_turn_and_nothing_else(tiny_tokenizer):
    assert tiny_tokenizer.chat_template
    (row,) = get_family("causal").tokenize_dialogue(tiny_tokenizer, DIALOGUE, lengths(max_length=512))
    runs, whole = labelled_runs(tiny_tokenizer, row)
    eos = tiny_tokenizer.eos_token
    assert runs == [a + eos for a in ANSWERS]  # each answer and its end-of-turn token, nothing of the user turns
    assert whole == tiny_tokenizer.apply_chat_template(DIALOGUE, tokenize=False)
    assert row["length"] == len(row["input_ids"]) and not row["prompt_truncated"]


def test_without_a_chat_template_the_alpaca_wrapper_is_extended_turn_by_turn(tiny_tokenizer):
    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = None
    family = get_family("causal")
    (row,) = family.tokenize_dialogue(tok, DIALOGUE, lengths(max_length=512))
    runs, whole = labelled_runs(tok, row)
    assert runs == [a + tok.eos_token for a in ANSWERS]
    single = family.tokenize(tok, DIALOGUE[0]["content"], ANSWERS[0], lengths(max_length=512))
    n = len(single["input_ids"])  # the first exchange is exactly the single-turn row
    assert row["input_ids"][:n] == single["input_ids"] and row["labels"][:n] == single["labels"]
    assert whole.count("### Instruction:") == 3 and whole.count("### Response:") == 3
    prompt = family.dialogue_prompt(tok, DIALOGUE[:3])
    assert prompt.endswith("### Instruction:\nWhich one is warm?\n\n### Response:")
    assert tok(prompt, add_special_tokens=False)["input_ids"] == row["input_ids"][: len(tok(prompt)["input_ids"])]


def test_a_long_dialogue_drops_its_oldest_exchanges_first(tiny_tokenizer):
    full = get_family("causal").tokenize_dialogue(tiny_tokenizer, DIALOGUE, lengths(max_length=512))[0]
    (row,) = get_family("causal").tokenize_dialogue(tiny_tokenizer, DIALOGUE, lengths(max_length=full["length"] - 1))
    runs, _ = labelled_runs(tiny_tokenizer, row)
    assert row["prompt_truncated"] and runs == [a + tiny_tokenizer.eos_token for a in ANSWERS[1:]]


def test_seq2seq_learns_history_to_next_turn_pairs_cut_from_the_oldest(tiny_tokenizer):
    family = get_family("seq2seq")
    rows = family.tokenize_dialogue(tiny_tokenizer, DIALOGUE, lengths(max_source_length=512, max_target_length=64))
    decode = tiny_tokenizer.decode
    assert [decode(r["labels"], skip_special_tokens=True) for r in rows] == ANSWERS
    assert decode(rows[0]["input_ids"], skip_special_tokens=True) == DIALOGUE[0]["content"]  # raw, as single-turn
    assert decode(rows[2]["input_ids"], skip_special_tokens=True) == (
        "User: Name three primary colours.\n\nAssistant: Red, yellow and blue.\n\nUser: Which one is warm?\n\n"
        "Assistant: Red and yellow are warm colours.\n\nUser: Translate the sentence into French."
    )
    short = family.tokenize_dialogue(tiny_tokenizer, DIALOGUE, lengths(max_source_length=40, max_target_length=64))
    last = decode(short[2]["input_ids"], skip_special_tokens=True)
    assert short[2]["prompt_truncated"] and "Name three" not in last and last.endswith("into French.")


def test_a_dialogue_must_alternate_and_end_on_an_answer(tiny_tokenizer):
    with pytest.raises(ValueError, match="end on an assistant turn"):
        get_family("causal").tokenize_dialogue(tiny_tokenizer, DIALOGUE[:3], lengths(max_length=64))
    with pytest.raises(ValueError, match="message 1"):
        get_family("seq2seq").tokenize_dialogue(
            tiny_tokenizer, [DIALOGUE[0], DIALOGUE[0], DIALOGUE[1]], lengths(max_source_length=8, max_target_length=8)
        )


@pytest.mark.parametrize("family,fixture", [("seq2seq", "tiny_t5"), ("causal", "tiny_gpt2")])
def test_a_student_trains_on_a_messages_column(family, fixture, request, tmp_path):
    import shutil

    from datasets import Dataset

    from lamini_lm.train import load_recipe

    model = shutil.copytree(request.getfixturevalue(fixture), tmp_path / "model")
    Dataset.from_list([{"messages": DIALOGUE, "instruction_source": "alpaca", "turns": 3}] * 4).save_to_disk(
        str(tmp_path / "data")
    )
    args = tiny_args(model, tmp_path / "data", tmp_path / "out", per_device_train_batch_size=4, max_steps=8)
    recipe = load_recipe(family=family, **args)
    recipe.train()
    losses = [h["loss"] for h in recipe.trainer.state.log_history if "loss" in h]
    assert len(losses) >= 5 and losses[-1] < losses[0] * 0.8, losses
    rows = len(recipe.trainer.train_dataset)
    assert rows == (12 if family == "seq2seq" else 4)  # seq2seq: one row per assistant turn
