"""The source builders on small local files the tests write: Self-Instruct, Alpaca, P3, FLAN v2, Wikipedia."""

from __future__ import annotations

import gzip
import json

import datasets
import pytest

from lamini_lm.builders import P3, Alpaca, DataFileError, FlanV2, SelfInstruct, WikipediaCategories, is_topic


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def prepare(builder) -> datasets.Dataset:
    builder.download_and_prepare()
    return builder.as_dataset(split="train")


def generation_error(excinfo) -> DataFileError:
    """The builder's own error behind datasets' DatasetGenerationError wrapper."""
    err = excinfo.value
    while not isinstance(err, DataFileError) and err.__cause__ is not None:
        err = err.__cause__
    assert isinstance(err, DataFileError), f"expected a DataFileError, got {excinfo.value!r}"
    return err


SEEDS = [
    {
        "id": "seed_task_0",
        "name": "breakfast_suggestion",
        "instruction": "Is there anything I can eat for a breakfast that doesn't include eggs?",
        "instances": [{"input": "", "output": "Yes, oatmeal."}],
        "is_classification": False,
    },
    {
        "id": "seed_task_1",
        "name": "antonym",
        "instruction": "Give the antonym.",
        "instances": [{"input": "hot", "output": "cold"}, {"input": "up", "output": "down"}],
        "is_classification": True,
    },
]


def test_self_instruct_seed_tasks_and_machine_generated(tmp_path):
    seeds = prepare(SelfInstruct(config_name="seed_tasks", data_files=str(write_jsonl(tmp_path / "s.jsonl", SEEDS))))
    assert seeds["id"] == ["seed_task_0", "seed_task_1"]
    assert seeds[1]["instances"] == [{"input": "hot", "output": "cold"}, {"input": "up", "output": "down"}]
    assert seeds["is_classification"] == [False, True]
    gen = [{"instruction": f"Task {i}", "input": "", "output": str(i)} for i in range(5)]
    machine = SelfInstruct(config_name="machine_generated", data_files=str(write_jsonl(tmp_path / "m.jsonl", gen)))
    ds = prepare(machine)
    assert ds.column_names == ["instruction", "input", "output"] and ds["output"] == ["0", "1", "2", "3", "4"]
    assert machine.info.version == datasets.Version("1.0.0") and "Self-Instruct" in machine.info.description


def test_alpaca_reads_the_original_json_array_jsonl_and_parquet(tmp_path):
    rows = [
        {"instruction": "Give three tips for staying healthy.", "input": "", "output": "Eat well."},
        {"instruction": "Translate.", "input": "bonjour", "output": "hello"},
    ]
    data = tmp_path / "data"
    data.mkdir()
    (data / "alpaca_data.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    as_array = prepare(Alpaca(data_files=str(data / "alpaca_data.json"), cache_dir=str(tmp_path / "c1")))
    datasets.Dataset.from_list(rows).to_parquet(str(data / "alpaca.parquet"))
    both = prepare(Alpaca(data_dir=str(data), cache_dir=str(tmp_path / "c2")))
    assert as_array.to_list() == rows
    assert both.to_list() == rows + rows  # data_dir reads the .json and the .parquet


def test_p3_samples_per_subset_deterministically_and_takes_subset_from_folder(tmp_path):
    for subset, n in (("super_glue_rte_gpt3", 30), ("wiki_qa_found_answer", 4)):
        rows = [{"inputs_pretokenized": f"{subset} q{i}", "targets_pretokenized": f"a{i}"} for i in range(n)]
        write_jsonl(tmp_path / "p3" / subset / "train.jsonl", rows)
    files = sorted(str(p) for p in (tmp_path / "p3").rglob("*.jsonl"))
    sample = prepare(P3(config_name="sample", per_subset=10, data_files=files, cache_dir=str(tmp_path / "a")))
    again = prepare(P3(config_name="sample", per_subset=10, data_files=files, cache_dir=str(tmp_path / "b")))
    counts = {s: sample["subset"].count(s) for s in set(sample["subset"])}
    assert counts == {"super_glue_rte_gpt3": 10, "wiki_qa_found_answer": 4}
    assert sample.to_list() == again.to_list()  # same seed, same rows
    other_seed = prepare(P3(config_name="sample", per_subset=10, seed=7, data_files=files, cache_dir=str(tmp_path)))
    assert other_seed["inputs"] != sample["inputs"]
    full = prepare(P3(config_name="full", data_files=files, subsets=["wiki_qa_found_answer"], cache_dir=str(tmp_path)))
    assert full["inputs"] == [f"wiki_qa_found_answer q{i}" for i in range(4)]


def test_flan_v2_streams_and_samples_by_task_name(tmp_path):
    rows = [{"inputs": f"q{i}", "targets": f"a{i}", "_task_name": f"task{i % 3}"} for i in range(30)]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "part.0.parquet"))
    builder = FlanV2(config_name="full", data_files=str(tmp_path / "part.0.parquet"))
    streamed = list(builder.as_streaming_dataset(split="train"))
    assert len(streamed) == 30 and streamed[4] == {"subset": "task1", "inputs": "q4", "targets": "a4"}
    sample = prepare(FlanV2(config_name="sample", per_subset=2, data_files=str(tmp_path / "part.0.parquet")))
    assert sorted(sample["subset"]) == ["task0", "task0", "task1", "task1", "task2", "task2"]


def test_wikipedia_topic_filter_on_the_sql_dump_and_a_table(tmp_path):
    dump = (
        "-- MySQL dump\nCREATE TABLE `category` (...);\n"
        "INSERT INTO `category` VALUES (1,'Design_bureaus',120,14,0),(2,'Conidae',900,30,2),"
        "(3,'People_from_New_York_City',5000,80,0),(4,'Infantry',51,11,0),(5,'Tiny',50,11,0),"
        "(6,'Few_subcats',400,10,0),(7,'O\\'Brien_family',300,20,0);\n"
    )
    with gzip.open(tmp_path / "enwiki-latest-category.sql.gz", "wt", encoding="utf-8") as f:
        f.write(dump)
    path = str(tmp_path / "enwiki-latest-category.sql.gz")
    topics = prepare(WikipediaCategories(config_name="topics", data_files=path))
    assert topics["name"] == ["Design bureaus", "Conidae", "Infantry", "O'Brien family"]
    everything = prepare(WikipediaCategories(config_name="all", data_files=path))
    assert len(everything) == 7 and everything[2] == {
        "name": "People from New York City",
        "subcategories": 80,
        "pages": 5000,
    }
    streamed = list(WikipediaCategories(config_name="topics", data_files=path).as_streaming_dataset(split="train"))
    assert [r["name"] for r in streamed] == topics["name"]
    table = tmp_path / "cats.csv"
    table.write_text("name,subcategories,pages\nSpace,40,300\nOuter space,9,300\n", encoding="utf-8")
    assert prepare(WikipediaCategories(config_name="topics", data_files=str(table)))["name"] == ["Space"]
    assert is_topic("Infantry", 11, 51) and not is_topic("A b c", 100, 1000)


def test_bad_inputs_name_file_line_and_field(tmp_path):
    good = {"instruction": "x", "input": "", "output": "y"}
    corrupt = tmp_path / "corrupt.jsonl"
    corrupt.write_text(json.dumps(good) + "\n" + '{"instruction": "x", "outp\n', encoding="utf-8")
    with pytest.raises(datasets.exceptions.DatasetGenerationError) as e:
        prepare(SelfInstruct(config_name="machine_generated", data_files=str(corrupt)))
    err = generation_error(e)
    assert (err.path, err.line) == (str(corrupt), 2) and "not valid JSON" in str(err)

    missing = write_jsonl(tmp_path / "missing.jsonl", [good, {"instruction": "x", "input": ""}])
    with pytest.raises(datasets.exceptions.DatasetGenerationError) as e:
        prepare(Alpaca(data_files=str(missing), cache_dir=str(tmp_path / "c")))
    assert "missing.jsonl, line 2: field 'output': missing" in str(generation_error(e))

    wrong = write_jsonl(tmp_path / "wrong.jsonl", [{"name": "Space", "subcategories": [1], "pages": 3}])
    with pytest.raises(datasets.exceptions.DatasetGenerationError) as e:
        prepare(WikipediaCategories(config_name="all", data_files=str(wrong)))
    err = generation_error(e)
    assert (err.line, err.field) == (1, "subcategories") and "expected int or str, got list" in str(err)
    # nothing half-written is left where datasets would look for a prepared dataset
    assert not list((tmp_path.parent).rglob("*.incomplete"))


def test_sampling_config_is_checked():
    with pytest.raises(ValueError, match="per_subset"):
        P3(config_name="sample", per_subset=0)
