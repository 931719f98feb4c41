"""The instructions builder and build_instructions: generation-run folders in, the LaMini schema out, one config
per instruction_source, load_dataset("lamini_lm/instructions") from the cache, rebuilds, bad inputs."""

from __future__ import annotations

import json
import os

import datasets
import pytest

from lamini_lm.builders import DataFileError, Instructions, build_instructions, dataset_card
from lamini_lm.records import GENERATION_COLUMNS, InstructionSource, generation_features, lamini_features


def generation_row(instruction, source, response="An answer.", error=None, **extra):
    row = {c: None for c in GENERATION_COLUMNS}
    row.update(seed_ids=[], topics=[], prompt_tokens=10, completion_tokens=5, cost_usd=0.0001)
    row.update(instruction=instruction, instruction_source=source, response=None if error else response, error=error)
    row.update(extra)
    return row


def save_run(path, rows):
    """A folder exactly as a generation run writes it: save_to_disk with generation_features()."""
    datasets.Dataset.from_list(rows, features=generation_features()).save_to_disk(str(path))
    return str(path)


@pytest.fixture
def runs(tmp_path):
    flan = save_run(
        tmp_path / "flan",
        [
            generation_row("Name a prime.", "generated_flan", "2", subset="cot_gsm8k", teacher_model="t"),
            generation_row("Name a colour.", "generated_flan", "Red"),
            generation_row("Broken.", "generated_flan", error="rate limited"),
            generation_row("No answer.", "generated_flan", response=None),
        ],
    )
    mixed = save_run(
        tmp_path / "mixed",
        [
            generation_row("Write a haiku.", "self_instruct_without_topic", "Leaves fall."),
            generation_row("Explain Conidae.", "self_instruct_with_topic", "Cone snails."),
            generation_row("Give three tips.", "alpaca", "Sleep."),
        ],
    )
    return [flan, mixed]


def loaded(name=None):
    return datasets.load_dataset("lamini_lm/instructions", name, split="train")


def test_builder_projects_to_the_lamini_schema_and_counts_skipped_rows(runs):
    builder = Instructions(config_name="all", generated=runs)
    builder.download_and_prepare()
    ds = builder.as_dataset(split="train")
    assert ds.features == lamini_features()
    assert ds["instruction"] == [
        "Name a prime.",
        "Name a colour.",
        "Write a haiku.",
        "Explain Conidae.",
        "Give three tips.",
    ]
    assert builder.skipped == {"error": 1, "no_response": 1}


def test_one_config_per_source_and_the_generation_config(runs):
    expected = {"generated_flan": 2, "self_instruct_without_topic": 1, "self_instruct_with_topic": 1, "alpaca": 1}
    for source in InstructionSource:
        builder = Instructions(config_name=source.value, generated=runs)
        builder.download_and_prepare()
        assert builder.info.splits["train"].num_examples == expected.get(source.value, 0)
        if source.value in expected:
            assert set(builder.as_dataset(split="train")["instruction_source"]) == {source.value}
    flan = Instructions(config_name="generated_flan", generated=runs)
    flan.download_and_prepare()
    assert flan.as_dataset(split="train")["response"] == ["2", "Red"]
    full = Instructions(config_name="generation", generated=runs)
    full.download_and_prepare()
    ds = full.as_dataset(split="train")
    assert ds.features == generation_features() and len(ds) == 7  # failed rows kept, with their reason
    assert ds[0]["subset"] == "cot_gsm8k" and ds[2]["error"] == "rate limited"


def test_streaming_from_generation_runs_and_plain_files(runs, tmp_path):
    jsonl = tmp_path / "extra.jsonl"
    jsonl.write_text(json.dumps({"instruction": "Hi", "response": "Hello", "instruction_source": "alpaca"}) + "\n")
    builder = Instructions(config_name="alpaca", generated=[*runs, str(jsonl)])
    rows = list(builder.as_streaming_dataset(split="train"))
    assert rows == [
        {"instruction": "Give three tips.", "response": "Sleep.", "instruction_source": "alpaca"},
        {"instruction": "Hi", "response": "Hello", "instruction_source": "alpaca"},
    ]


def test_original_release_from_local_parquet(tmp_path):
    released = [
        {"instruction": "List three fruits.", "response": "Apple, pear, fig.", "instruction_source": "original_p3"},
        {"instruction": "Say hi.", "response": "Hi.", "instruction_source": "alpaca"},
    ]
    path = str(tmp_path / "train-00000-of-00001.parquet")
    datasets.Dataset.from_list(released).to_parquet(path)
    result = build_instructions(original_files=[path])
    assert result.num_rows["all"] == 2 and result.num_rows["original_p3"] == 1
    assert loaded("original_p3")["instruction"] == ["List three fruits."]


def test_build_then_load_dataset_by_repo_id_and_rebuild_serves_new_data(runs, tmp_path):
    result = build_instructions(generated=runs)
    assert result.skipped == {"error": 1, "no_response": 1}
    assert len(loaded()) == 5  # no config: `all`
    generation = loaded("generation")
    assert len(generation) == 7 and generation.features == generation_features()
    assert loaded("generated_flan")["instruction"] == ["Name a prime.", "Name a colour."]
    assert result.num_rows["generated_p3"] == 0 and "generated_p3" not in result.paths
    with pytest.raises(ValueError, match="Couldn't find cache for lamini_lm/instructions for config 'generated_p3'"):
        loaded("generated_p3")  # an empty config is left out of the cache, with datasets' clear message
    # A new generation run: the next build is a new hash; the old one is gone, so nothing stale is served.
    p3 = save_run(tmp_path / "p3", [generation_row("Classify: great movie.", "generated_p3", "positive")])
    again = build_instructions(generated=[*runs, p3])
    assert again.paths["all"] != result.paths["all"] and not os.path.exists(result.paths["all"])
    assert len(loaded()) == 6 and loaded("generated_p3")["response"] == ["positive"]
    # Same inputs again: the cache is reused, not rebuilt.
    assert build_instructions(generated=[*runs, p3]).paths == again.paths


def test_bad_inputs_name_file_line_and_field_and_leave_no_cache_entry(runs, tmp_path):
    build_instructions(generated=runs)
    cache = datasets.config.HF_DATASETS_CACHE
    before = sorted(str(p) for p in cache.glob("lamini_lm___instructions/*/*/*") if p.is_dir())
    assert len(before) == 6  # all, generation and the four sources present

    corrupt = tmp_path / "corrupt.jsonl"
    good = {"instruction": "a", "response": "b", "instruction_source": "alpaca"}
    corrupt.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n" + '{"instruction": "a", "resp\n')
    with pytest.raises(DataFileError, match=r"corrupt.jsonl, line 3: not valid JSON"):
        build_instructions(generated=[*runs, str(corrupt)])

    no_source = tmp_path / "no_source"
    datasets.Dataset.from_list([{"instruction": "a", "response": "b"}]).save_to_disk(str(no_source))
    with pytest.raises(DataFileError, match=r"no_source: field 'instruction_source': column missing"):
        build_instructions(generated=[str(no_source)])

    wrong_type = tmp_path / "wrong_type.jsonl"
    wrong_type.write_text(json.dumps(good) + "\n" + json.dumps({**good, "response": 42}) + "\n")
    with pytest.raises(DataFileError) as e:
        build_instructions(generated=[str(wrong_type)])
    assert (e.value.line, e.value.field) == (2, "response") and "expected str, got int" in str(e.value)

    bad_source = save_run(tmp_path / "bad_source", [generation_row("a", "flan_generated", "b")])
    with pytest.raises(DataFileError, match=r"row 1: field 'instruction_source': unknown instruction_source"):
        build_instructions(generated=[bad_source])

    null_instruction = save_run(
        tmp_path / "null_instruction", [generation_row("a", "alpaca", "b")] * 2 + [generation_row(None, "alpaca", "b")]
    )
    with pytest.raises(DataFileError, match=r"null_instruction, row 3: field 'instruction': is null"):
        build_instructions(generated=[null_instruction])

    typed = tmp_path / "typed.parquet"
    datasets.Dataset.from_dict({"instruction": ["a"], "response": [1], "instruction_source": ["alpaca"]}).to_parquet(
        str(typed)
    )
    with pytest.raises(
        DataFileError, match=r"typed.parquet: field 'response': column has type int64, expected string"
    ):
        build_instructions(original_files=[str(typed)])

    after = sorted(str(p) for p in cache.glob("lamini_lm___instructions/*/*/*") if p.is_dir())
    assert after == before  # the failed builds left nothing; the previous build is still served
    assert len(loaded()) == 5


def test_card_template_renders():
    card = dataset_card("instructions", {"license": "cc-by-nc-4.0", "language": ["en"]}, num_rows="5")
    assert "license: cc-by-nc-4.0" in str(card) and "Rows: 5." in card.text


def test_nothing_to_build_is_a_clear_error():
    with pytest.raises(ValueError, match="nothing to build"):
        Instructions(config_name="all").download_and_prepare()
    with pytest.raises(ValueError, match="unknown config"):
        build_instructions(generated=["x"], configs=["generated_t5"])


def test_builder_used_directly_is_cached_per_inputs(runs, tmp_path):
    first = Instructions(config_name="all", generated=runs[:1])
    first.download_and_prepare()
    second = Instructions(config_name="all", generated=runs)  # same cache, other inputs: not the first's data
    second.download_and_prepare()
    assert first.cache_dir != second.cache_dir
    assert len(first.as_dataset(split="train")) == 2 and len(second.as_dataset(split="train")) == 5
