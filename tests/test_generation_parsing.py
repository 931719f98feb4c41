"""Parsing <example> lists out of real-world-shaped teacher answers."""

from __future__ import annotations

from lamini_lm.generation import ParseReport, parse_examples

CHATTY = """Sure! Here are 5 diverse examples similar to the ones you provided:

1. <example>What are three ways to save water at home?</example>
2. <example>Write a haiku about autumn leaves.</example>
3.<example> "Explain the difference between weather and climate." </example>
4. <Example>Translate "good morning" into Spanish.</Example>
5. < example >How do vaccines train the immune system?< /example >

I hope these examples are helpful! Let me know if you need more."""


def test_chatter_numbering_odd_tags_and_quotes():
    items, report = parse_examples(CHATTY, "stop")
    assert items == [
        "What are three ways to save water at home?",
        "Write a haiku about autumn leaves.",
        "Explain the difference between weather and climate.",
        'Translate "good morning" into Spanish.',
        "How do vaccines train the immune system?",
    ]
    assert report.kept == 5 and report.dropped == 0
    assert report.chatter_lines == 2


def test_truncated_last_item_is_dropped_and_counted():
    text = "<example>Name a fruit.</example>\n<example>Describe the water cycle in three"
    items, report = parse_examples(text, finish_reason="length")
    assert items == ["Name a fruit."]
    assert (report.truncated, report.dropped) == (1, 1)


def test_missing_closing_tags_are_kept_when_not_truncated():
    text = (
        "<example>List two prime numbers.\n<example>What is the capital of Peru?</example>\n"
        "<example>Give a synonym for happy.\n\nThanks for asking!"
    )
    items, report = parse_examples(text, finish_reason="stop")
    assert items == ["List two prime numbers.", "What is the capital of Peru?", "Give a synonym for happy."]
    assert report.unclosed == 2 and report.chatter_lines == 1


def test_empty_and_duplicate_items_are_dropped():
    text = "<example></example><example>2.</example><example>Add 2 and 3.</example><example>add 2 and 3.</example>"
    items, report = parse_examples(text)
    assert items == ["Add 2 and 3."]
    assert (report.empty, report.duplicates, report.dropped) == (2, 1, 3)


def test_untagged_numbered_list_falls_back_to_lines():
    text = "Here you go:\n1. Write a poem about rain.\n2) Sum the numbers 1 to 10.\n- What is DNA?\n4. Describe a"
    items, report = parse_examples(text, finish_reason="length")
    assert items == ["Write a poem about rain.", "Sum the numbers 1 to 10.", "What is DNA?"]
    assert report.untagged_answers == 1 and report.truncated == 1


def test_unparsable_and_empty_answers_are_reported():
    assert parse_examples("I cannot help with that.")[1].unparsable_answers == 1
    assert parse_examples(None)[0] == []


def test_multiline_p3_style_item_is_kept_whole():
    text = "<example>Read the passage and answer.\nPassage: The sun is a star.\nQuestion: What is the sun?</example>"
    items, _ = parse_examples(text)
    assert items == ["Read the passage and answer.\nPassage: The sun is a star.\nQuestion: What is the sun?"]


def test_reports_add_up():
    total = parse_examples(CHATTY)[1] + parse_examples("<example>a b</example>\n<example>cut", "length")[1]
    assert isinstance(total, ParseReport)
    assert (total.kept, total.truncated) == (6, 1)
