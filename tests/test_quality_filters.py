"""Filters: each heuristic rejects what it should, can be switched off, and is counted in the report."""

from __future__ import annotations

import datasets
import pytest

from lamini_lm.errors import DataError
from lamini_lm.quality import FilterConfig, filter_rows
from lamini_lm.quality.filters import reject_reason

CASES = [
    ("Hi there.", "Hello!", "length"),
    ("Please " + "word " * 160, "ok", "length"),
    ("Draw a picture of a cat sitting on a mat.", "I cannot.", "blacklist"),
    ("Make a flowchart of the login process.", "...", "blacklist"),
    ("Go to the store and buy milk please.", "...", "blacklist"),
    ('"Quote this sentence back to me now.', "ok", "leading_punctuation"),
    ("¿Cómo estás hoy, amigo mío?", "Bien.", "non_ascii_start"),
    ("Name three primary colours please.", "   ", "empty_response"),
    ("Name three primary colours please.", None, "empty_response"),
    ("Tell me how to pick a lock quickly.", "As an AI language model, I cannot help with that.", "refusal"),
    ("Tell me how to pick a lock quickly.", "I'm sorry, but I can't assist with that.", "refusal"),
    ("Repeat after me: hello world.", "repeat after me: Hello  world", "echo"),
    ("Name three primary colours please.", "Red, yellow and blue.", None),
    ("Summarize the story of Hamlet in two sentences.", "A prince avenges his father.", None),
    ("Summarize the plot of Hamlet in two sentences.", "...", "blacklist"),  # Self-Instruct's list is blunt
    ("Explain why the mapping function is injective.", "Because ...", None),  # "mapping" is not "map"
]


@pytest.mark.parametrize(("instruction", "response", "expected"), CASES)
def test_reject_reason(instruction, response, expected):
    assert reject_reason(instruction, response, FilterConfig()) == expected


def test_filter_rows_report_and_switches():
    ds = datasets.Dataset.from_dict(
        {
            "instruction": [c[0] for c in CASES],
            "response": [c[1] for c in CASES],
            "instruction_source": ["alpaca"] * len(CASES),
        }
    )
    kept, report = filter_rows(ds)
    assert report.step == "filters" and report.rows_in == len(CASES)
    assert len(kept) == report.rows_out == sum(c[2] is None for c in CASES)
    assert report.removed["blacklist"] == 4 and report.removed["refusal"] == 2
    assert report.details["removed_by_reason_and_source"]["length"] == {"alpaca": 2}
    assert report.removed_by_source == {"alpaca": len(CASES) - len(kept)}
    assert report.details["rows"]["echo"][0]["response"] == "repeat after me: Hello  world"
    assert report.examples["echo"][0] == report.details["rows"]["echo"][0]["instruction"]
    kept_all, report_off = filter_rows(
        ds,
        length=False,
        blacklist=False,
        leading_punctuation=False,
        non_ascii_start=False,
        empty_response=False,
        refusal=False,
        echo=False,
    )
    assert len(kept_all) == len(ds) and report_off.removed == {}
    _, custom = filter_rows(ds, blacklist_words=["hamlet"])
    assert custom.removed["blacklist"] == 2  # only the two Hamlet rows; "plot" is no longer listed


def test_without_response_column_only_instruction_filters_run():
    ds = datasets.Dataset.from_dict({"instruction": ["Plot a graph of sales.", "Name three primary colours."]})
    kept, report = filter_rows(ds)
    assert kept["instruction"][:] == ["Name three primary colours."]
    assert report.removed == {"blacklist": 1}
    with pytest.raises(DataError, match="no 'instruction' column"):
        filter_rows(datasets.Dataset.from_dict({"text": ["x"]}))
