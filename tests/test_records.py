import datasets
import pytest

from lamini_lm.records import (
    GENERATION_COLUMNS,
    LAMINI_COLUMNS,
    Instruction,
    InstructionSource,
    LaMiniExample,
    Response,
    Usage,
    generation_features,
    lamini_features,
)


def test_seven_sources_as_released():
    assert sorted(s.value for s in InstructionSource) == [
        "alpaca",
        "generated_flan",
        "generated_p3",
        "original_flan",
        "original_p3",
        "self_instruct_with_topic",
        "self_instruct_without_topic",
    ]
    assert InstructionSource.GENERATED_P3.generated and not InstructionSource.ALPACA.generated


def test_unknown_source_is_named():
    with pytest.raises(ValueError, match="unknown instruction_source 'gpt4'.*alpaca"):
        LaMiniExample("a", "b", "gpt4")


def test_lamini_schema_is_three_strings():
    feats = lamini_features()
    assert list(feats) == list(LAMINI_COLUMNS) == ["instruction", "response", "instruction_source"]
    assert all(f == datasets.Value("string") for f in feats.values())
    ds = datasets.Dataset.from_list([LaMiniExample("Hi", "Hello", "alpaca").to_row()], features=feats)
    assert LaMiniExample.from_row(ds[0]) == LaMiniExample("Hi", "Hello", InstructionSource.ALPACA)


def test_generation_schema_holds_instruction_rows_and_failures():
    feats = generation_features()
    assert list(feats) == list(GENERATION_COLUMNS)
    ins = Instruction("Name a fish.", "self_instruct_with_topic", seed_ids=["s1", "s2"], topics=["Conidae"])
    row = {c: None for c in GENERATION_COLUMNS} | ins.to_row() | {"error": "context_length_exceeded"}
    ds = datasets.Dataset.from_list([row], features=feats)
    assert ds[0]["topics"] == ["Conidae"] and ds[0]["response"] is None and ds[0]["error"]


def test_response_needs_text_or_error():
    r = Response("Red.", finish_reason="stop", usage=Usage(10, 2), model="m")
    assert r.ok and r.usage.total_tokens == 12
    assert Response.from_dict(r.to_dict()) == r
    with pytest.raises(ValueError):
        Response(None)
    with pytest.raises(ValueError):
        Response("x", error="y")


def test_from_row_names_missing_column():
    with pytest.raises(KeyError, match="response"):
        LaMiniExample.from_row({"instruction": "a", "instruction_source": "alpaca"})
