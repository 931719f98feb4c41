"""The multi-turn builders (ShareGPT, UltraChat, OpenAssistant trees) and the ``dialogues`` config of
``lamini_lm/instructions``, on small local files the tests write."""

from __future__ import annotations

import gzip
import json

import datasets
import pytest

from lamini_lm.builders import DataFileError, Instructions, OpenAssistant, ShareGPT, UltraChat
from lamini_lm.builders.oasst import tree_threads


def write_jsonl(path, rows, gz=False):
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def prepare(builder) -> datasets.Dataset:
    builder.download_and_prepare()
    return builder.as_dataset(split="train")


def builder_error(excinfo) -> DataFileError:
    err = excinfo.value
    while not isinstance(err, DataFileError) and err.__cause__ is not None:
        err = err.__cause__
    assert isinstance(err, DataFileError), repr(excinfo.value)
    return err


def roles(messages):
    return [m["role"] for m in messages]


def turn(speaker, value):
    return {"from": speaker, "value": value}


def test_sharegpt_maps_speakers_and_cleans_each_conversation(tmp_path):
    rows = [
        {
            "id": "a",
            "conversations": [
                turn("system", "be nice"),
                turn("human", "Hi"),
                turn("gpt", "Hello"),
                turn("human", "More?"),
                turn("human", "Please."),
                turn("chatgpt", "Sure"),
                turn("human", "unanswered"),
            ],
        },
        {"id": "b", "conversations": [turn("gpt", "I start"), turn("human", "no answer")]},
        {"conversations": [turn("user", "Q"), turn("assistant", "A")]},
    ]
    ds = prepare(ShareGPT(data_files=str(write_jsonl(tmp_path / "s.jsonl", rows)), cache_dir=str(tmp_path / "c")))
    assert ds["id"][0] == "a" and len(ds) == 2  # "b" has no answered user turn
    assert ds[0]["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "More?\n\nPlease."},
        {"role": "assistant", "content": "Sure"},
    ]
    assert ds["turns"] == [2, 1] and set(ds["instruction_source"]) == {"sharegpt"}
    assert ds[1]["id"].endswith("s.jsonl:3")


def test_sharegpt_errors_name_file_line_and_field(tmp_path):
    bad = [{"conversations": [turn("human", "Hi")]}, {"conversations": [turn("robot", "x")]}]
    path = write_jsonl(tmp_path / "bad.jsonl", bad)
    with pytest.raises(Exception) as excinfo:
        prepare(ShareGPT(data_files=str(path), cache_dir=str(tmp_path / "c")))
    err = builder_error(excinfo)
    assert (err.line, err.field) == (2, "conversations[0].from") and "robot" in str(err) and "bad.jsonl" in str(err)


def test_ultrachat_reads_both_layouts(tmp_path):
    rows = [
        {"id": "1", "data": ["Q1", "A1", "Q2", "A2"]},
        {"prompt_id": "p", "messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]},
    ]
    ds = prepare(UltraChat(data_files=str(write_jsonl(tmp_path / "u.jsonl", rows)), cache_dir=str(tmp_path / "c")))
    assert ds["id"] == ["1", "p"] and ds["turns"] == [2, 1] and roles(ds[0]["messages"]) == ["user", "assistant"] * 2
    path = write_jsonl(tmp_path / "v.jsonl", [{"data": ["Q", 3]}])
    with pytest.raises(Exception) as excinfo:
        prepare(UltraChat(data_files=str(path), cache_dir=str(tmp_path / "d")))
    assert builder_error(excinfo).field == "data[1]"


def msg(mid, role, text, rank=None, replies=(), **kw):
    return {"message_id": mid, "role": role, "text": text, "rank": rank, "replies": list(replies), "lang": "en", **kw}


TREE = {
    "message_tree_id": "t1",
    "prompt": msg(
        "p",
        "prompter",
        "Root question",
        replies=[
            msg("a2", "assistant", "second best", rank=1, replies=[msg("f", "prompter", "follow-up, unanswered")]),
            msg(
                "a1",
                "assistant",
                "best",
                rank=0,
                replies=[
                    msg("q1", "prompter", "and then?", replies=[msg("b1", "assistant", "then this", rank=0)]),
                    msg("q2", "prompter", "deleted", deleted=True, replies=[msg("x", "assistant", "never")]),
                ],
            ),
            msg("a3", "assistant", "failed review", rank=2, review_result=False),
        ],
    ),
}


def test_oasst_trees_flatten_best_ranked_branch_first(tmp_path):
    threads = tree_threads(TREE["prompt"], "all", "t", 1)
    assert [[mid for mid, _, _ in t] for t in threads] == [["p", "a1", "q1", "b1"], ["p", "a2", "f"]]
    german = {**TREE, "prompt": {**TREE["prompt"], "lang": "de"}}
    path = write_jsonl(tmp_path / "trees.jsonl.gz", [TREE, german], gz=True)
    best = prepare(OpenAssistant(data_files=str(path), cache_dir=str(tmp_path / "c"), lang="en"))
    assert len(best) == 1
    assert [m["content"] for m in best[0]["messages"]] == ["Root question", "best", "and then?", "then this"]
    every = prepare(OpenAssistant(data_files=str(path), cache_dir=str(tmp_path / "d"), threads="all", lang="en"))
    assert every["turns"] == [2, 1] and every[1]["messages"][1]["content"] == "second best"
    assert every["id"] == ["t1:b1", "t1:a2"] and set(every["instruction_source"]) == {"oasst"}
    broken = {"prompt": msg("p", "prompter", "Q", replies=[{"message_id": "z", "role": "bot", "text": "?"}])}
    path = write_jsonl(tmp_path / "b.jsonl", [TREE, broken])
    with pytest.raises(Exception) as excinfo:
        prepare(OpenAssistant(data_files=str(path), cache_dir=str(tmp_path / "e")))
    err = builder_error(excinfo)
    assert (err.line, err.field) == (2, "prompt.replies[0].role")


def test_dialogues_config_keeps_complete_dialogues_and_checks_messages(tmp_path):
    good = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
    rows = [
        {"instruction": "Q", "response": "A", "instruction_source": "alpaca", "messages": good, "complete": True},
        {"instruction": "Q2", "response": "A2", "instruction_source": "alpaca", "messages": good, "complete": False},
        {"instruction": "Q3", "response": None, "instruction_source": "alpaca", "messages": [], "error": "HTTP 500"},
    ]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    b = Instructions(config_name="dialogues", data_files=str(path), cache_dir=str(tmp_path / "c"))
    ds = prepare(b)
    assert ds.column_names == ["messages", "instruction_source", "turns"] and len(ds) == 1 and ds["turns"] == [1]
    assert b.skipped["incomplete"] == 2
    plain = prepare(Instructions(config_name="all", data_files=str(path), cache_dir=str(tmp_path / "p")))
    assert plain["instruction"] == ["Q", "Q2"]  # single-turn configs read the first exchange
    bad = [{**rows[0], "messages": [*good, {"role": "assistant", "content": "again"}]}]
    path = write_jsonl(tmp_path / "b.jsonl", bad)
    with pytest.raises(Exception) as excinfo:
        prepare(Instructions(config_name="dialogues", data_files=str(path), cache_dir=str(tmp_path / "e")))
    err = builder_error(excinfo)
    assert (err.line, err.field) == (1, "messages[2].role")


@pytest.mark.integration
def test_generated_dialogues_build_into_the_dialogues_config(tmp_path):
    from generation_fakes import FakeOpenAI
    from lamini_lm.generation import DialogueArgs, OutputArgs, TeacherConfig, run_generate_dialogues

    inp = write_jsonl(
        tmp_path / "in.jsonl", [{"instruction": f"Task {i}.", "instruction_source": "alpaca"} for i in range(3)]
    )
    with FakeOpenAI() as url:
        run_generate_dialogues(
            DialogueArgs(input=str(inp), turns="2"),
            OutputArgs(output=str(tmp_path / "gen")),
            TeacherConfig(base_url=url, model="fake", progress=False),
        )
    ds = prepare(
        Instructions(config_name="dialogues", generated=[str(tmp_path / "gen")], cache_dir=str(tmp_path / "c"))
    )
    assert ds["turns"] == [2, 2, 2] and set(ds["instruction_source"]) == {"alpaca"}
    assert [m["content"] for m in ds[0]["messages"]][:2] == ["Task 0.", "Answer: Task 0."]
