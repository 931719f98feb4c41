"""Use and evaluation of multi-turn students: ``lamini_lm.generate`` takes message lists, and the judge rates the
last answer of the shipped two-turn set with the dialogue as context."""

from __future__ import annotations

import json

import pytest

from generation_fakes import FakeOpenAI
from lamini_lm.evaluation.judge import DIALOGUE_JUDGE_TEMPLATE, judge_dialogue_messages, parse_rating
from lamini_lm.evaluation.two_turn import TWO_TURN_SET
from lamini_lm.families import get_family

CHAT = [
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue."},
    {"role": "user", "content": "Another one?"},
]


def test_the_two_turn_set_is_a_question_then_a_follow_up():
    assert len(TWO_TURN_SET) == 10 and len({it["id"] for it in TWO_TURN_SET}) == 10
    assert all(len(it["turns"]) == 2 and all(t.strip() for t in it["turns"]) for it in TWO_TURN_SET)


def test_generate_answers_a_dialogue_as_its_family_learnt_it(tiny_gpt2, monkeypatch):
    import lamini_lm
    from lamini_lm.inference import load_student

    model, tokenizer = load_student(tiny_gpt2)
    seen = []
    original = type(tokenizer).__call__

    def spy(self, text, *a, **kw):
        if isinstance(text, list):
            seen.extend(text)
        return original(self, text, *a, **kw)

    monkeypatch.setattr(type(tokenizer), "__call__", spy)
    one = lamini_lm.generate(model, CHAT, tokenizer=tokenizer, max_new_tokens=3, do_sample=False)
    many = lamini_lm.generate(model, [CHAT, "Name a fruit."], tokenizer=tokenizer, max_new_tokens=3, do_sample=False)
    assert isinstance(one, str) and isinstance(many, list) and len(many) == 2 and many[0] == one
    family = get_family("causal")
    assert (
        seen[0]
        == family.dialogue_prompt(tokenizer, CHAT)
        == tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    )
    assert seen[-1] == family.wrap("Name a fruit.")  # plain instructions keep the single-turn wrapper


def test_seq2seq_generate_takes_a_dialogue(tiny_t5):
    import lamini_lm

    out = lamini_lm.generate(str(tiny_t5), [CHAT, CHAT[:1]], max_new_tokens=3, do_sample=False)
    assert len(out) == 2 and all(isinstance(a, str) for a in out)


def test_the_dialogue_judge_prompt_shows_the_conversation_and_the_last_answer():
    (msg,) = judge_dialogue_messages(CHAT, "Red.")
    assert "User: Name a colour.\n\nAssistant: Blue.\n\nUser: Another one?" in msg["content"]
    assert (
        msg["content"].endswith(DIALOGUE_JUDGE_TEMPLATE.split("{answer}")[1])
        and "[Last answer]\nRed." in msg["content"]
    )


@pytest.mark.integration
def test_two_turn_judge_end_to_end(tiny_gpt2, tmp_path):
    from lamini_lm.cli import main

    out = tmp_path / "judge"
    fake = FakeOpenAI()
    fake.record_bodies = True
    with fake as url:
        argv = ["judge", str(tiny_gpt2), "--two_turn", "--limit", "3", "--output_dir", str(out), "--base_url", url]
        argv += ["--model", "fake", "--max_new_tokens", "4", "--device", "cpu", "--no_progress"]
        assert main(argv) == 0
    rows = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in rows] == [it["turns"][1] for it in TWO_TURN_SET[:3]]
    for row, it in zip(rows, TWO_TURN_SET):
        assert [m["role"] for m in row["context"]] == ["user", "assistant", "user"]
        assert row["context"][0]["content"] == it["turns"][0] and row["context"][2]["content"] == it["turns"][1]
    judgements = [json.loads(line) for line in (out / "judgements.jsonl").read_text().splitlines()]
    assert len(judgements) == 3 and all(j["context"] == r["context"] for j, r in zip(judgements, rows))
    for j in judgements:
        rating = parse_rating(j["raw"])
        assert (j["grade"], j["rule"]) == (rating.grade, rating.rule)
    sent = [b["messages"][0]["content"] for b in fake.bodies]
    assert len(sent) == 3 and all("[Conversation]\nUser: " in s and "[Last answer]" in s for s in sent)
