"""The paper's prompts and the Alpaca wrapper, to the character (expected texts copied from the paper)."""

import pytest

from lamini_lm import prompts

EXAMPLE_GUIDED = """<example>What are some things you can do to de-stress?</example>
<example>How can individuals and organizations reduce unconscious bias?</example>
<example>Write a program to compute the sum of integers from k to n.</example>

Generate 20 diverse examples that are similar to the provided examples.
You do not need to provide a response to the generated examples.
Each example must include an instruction.
Each generated instruction can be either an imperative sentence or a question.
Each example must start with the label "<example>" and end with the label "</example>"."""

TOPIC_GUIDED = """<example>Try coming up with a creative way to stay motivated during a workout.</example>
<example>In your opinion, what are the qualities of an effective sports coach?</example>
<example>Return the SSN number for the person: "Yann LeCun"</example>

Generate 20 diverse examples that are similar to the provided examples with the topics "Design bureaus, Conidae, Infantry".
You do not need to provide a response to the generated examples.
Each example must include an instruction.
Each generated instruction can be either an imperative sentence or a question.
Each example must start with the label "<example>" and end with the label "</example>"."""  # noqa: E501


def test_example_guided_prompt_matches_paper():
    seeds = [
        "What are some things you can do to de-stress?",
        "How can individuals and organizations reduce unconscious bias?",
        "Write a program to compute the sum of integers from k to n.",
    ]
    assert prompts.example_guided_prompt(seeds, n=20) == EXAMPLE_GUIDED


def test_example_guided_prompt_asks_for_n():
    out = prompts.example_guided_prompt(["a", "b", "c"], n=10)
    assert "\nGenerate 10 diverse examples that are similar to the provided examples.\n" in out


def test_topic_guided_prompt_matches_paper():
    seeds = [
        "Try coming up with a creative way to stay motivated during a workout.",
        "In your opinion, what are the qualities of an effective sports coach?",
        'Return the SSN number for the person: "Yann LeCun"',
    ]
    out = prompts.topic_guided_prompt(seeds, ["Design bureaus", "Conidae", "Infantry"], n=20)
    assert out == TOPIC_GUIDED


def test_system_message_verbatim():
    assert prompts.SYSTEM_MESSAGE == (
        "You are a helpful assistant, but you must respond the provided instructions as concise as possible."
    )


def test_alpaca_wrapper_to_the_character():
    wrapped = prompts.wrap_instruction("Name a colour.", family="causal")
    assert wrapped == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n\n### Instruction:\nName a colour.\n\n### Response:"
    )
    assert not wrapped.endswith("\n")


def test_wrapper_keeps_braces_and_raw_for_seq2seq():
    assert prompts.wrap_instruction("Format {x} as {y}", family="causal").count("{x}") == 1
    assert prompts.wrap_instruction("  Name a colour. ", family="seq2seq") == "  Name a colour. "
    with pytest.raises(ValueError, match="unknown model family"):
        prompts.wrap_instruction("x", family="rnn")


def test_prompt_versions_are_stable_hashes():
    assert set(prompts.PROMPT_HASHES) == {"example_guided", "topic_guided", "system_message", "alpaca_wrapper"}
    assert all(len(h) == 12 and int(h, 16) >= 0 for h in prompts.PROMPT_HASHES.values())
    assert prompts.prompt_hash(prompts.SYSTEM_MESSAGE) == prompts.PROMPT_HASHES["system_message"]
    assert prompts.prompt_hash(prompts.SYSTEM_MESSAGE + " ") != prompts.PROMPT_HASHES["system_message"]


def test_bad_prompt_inputs():
    with pytest.raises(ValueError, match="at least one example"):
        prompts.example_guided_prompt([])
    with pytest.raises(ValueError, match="at least one topic"):
        prompts.topic_guided_prompt(["a"], [])
