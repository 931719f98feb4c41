"""Statistics plots, the dataset card (rendered from the manifest: only the steps that ran), the release folder
(parquet shards, card, plots, manifest; internal columns left out), and its output rules."""

from __future__ import annotations

import json
import random

import datasets
import pytest
from huggingface_hub import DatasetCard

from lamini_lm.artifacts import Manifest, read_manifest
from lamini_lm.errors import OutputExistsError
from lamini_lm.prompts import EXAMPLE_GUIDED_TEMPLATE, PROMPT_HASHES, SYSTEM_MESSAGE
from lamini_lm.publishing.dataset import build_release, dataset_card
from lamini_lm.quality import compute_stats, decontaminate, dedup, filter_rows

SOURCES = ["alpaca", "generated_flan", "self_instruct_with_topic"]
BENCH_Q = "Which of the following statements best describes the function of mitochondria inside eukaryotic cells"


def make_ds(n: int = 60) -> datasets.Dataset:
    rng = random.Random(0)
    verbs = ["Write", "Explain", "Describe", "Summarize", "List"]
    nouns = ["poem", "story", "recipe", "essay", "summary", "letter"]
    words = [f"word{k}" for k in range(500)]

    def instruction(i: int) -> str:
        return " ".join([verbs[i % 5], "a", nouns[i % 6], "about", *rng.sample(words, rng.randint(3, 12))]) + "."

    rows = {
        "instruction": [instruction(i) for i in range(n)],
        "response": [f"Here is answer {i}, short and concise." for i in range(n)],
        "instruction_source": [SOURCES[i % 3] for i in range(n)],
        "teacher_model": ["gpt-3.5-turbo"] * n,
        "prompt_tokens": [30] * n,
        "completion_tokens": [12] * n,
        "cost_usd": [0.0005] * n,
        "request_key": [f"key-{i}" for i in range(n)],
        "response_prompt_version": [PROMPT_HASHES["system_message"]] * n,
    }
    rows["instruction"][5] = rows["instruction"][4].upper()  # an exact duplicate
    rows["instruction"][7] = f"Answer this: {BENCH_Q}?"  # contaminated
    return datasets.Dataset.from_dict(rows)


def test_stats_and_plots(tmp_path):
    stats = compute_stats(make_ds(), tmp_path, embed="tfidf")
    assert stats["counts"] == {"alpaca": 20, "generated_flan": 20, "self_instruct_with_topic": 20}
    assert stats["prompt_tokens"] == 1800 and stats["cost_usd"] == pytest.approx(0.03)
    assert stats["teacher_models"] == ["gpt-3.5-turbo"]
    # 30 pairs, 2 rows each; row 5 repeats row 4 ("List a summary ...")
    assert len(stats["verb_noun"]) == 20 and stats["verb_noun"][0] == ["list", "summary", 3]
    assert all(v in ("write", "explain", "describe", "summarize", "list") for v, _, _ in stats["verb_noun"])
    assert stats["diversity_map"] == {"points": 60, "embedding": "tfidf", "projection": "pca"}
    for name in ("counts_per_source", "lengths", "verb_noun", "diversity_map"):
        png = tmp_path / stats["plots"][name]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


@pytest.mark.slow
def test_diversity_map_with_minilm(tmp_path):
    stats = compute_stats(make_ds(30), tmp_path, embed="minilm")
    assert stats["diversity_map"]["embedding"] == "minilm"


def reports_for(ds, tmp_path):
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"question": BENCH_Q}) + "\n")
    ds, rep_dedup = dedup(ds, num_proc=1)
    ds, rep_filters = filter_rows(ds)
    ds, rep_decon = decontaminate(ds, {"arc_challenge": str(bench)})
    return ds, [rep_dedup, rep_filters, rep_decon]


def test_card_renders_the_recorded_steps_and_round_trips(tmp_path):
    ds, reports = reports_for(make_ds(), tmp_path)
    assert len(ds) == 58
    manifest = Manifest(stage="decontaminate", reports=reports)
    card = dataset_card(ds, manifest, pretty_name="Tiny LaMini", created="2026-01-02")
    path = tmp_path / "README.md"
    card.save(path)
    loaded = DatasetCard.load(path)
    assert loaded.data.license == "cc-by-nc-4.0"
    assert loaded.data.pretty_name == "Tiny LaMini"
    assert loaded.data.task_categories == ["text2text-generation"]
    assert loaded.data.configs[0]["data_files"][0]["path"] == "data/train-*"
    assert loaded.text == card.text
    text = card.text
    for needle in (
        "**58 rows**",
        "| `alpaca` | 20 |",
        "gpt-3.5-turbo",
        f"system_message `{PROMPT_HASHES['system_message']}`",
        SYSTEM_MESSAGE,
        "Tokens: 1,740 prompt + 696 completion",
        "Cost: $0.03",
        "| dedup | 60 | 59 | `exact` 1 |",
        "| filters | 59 | 59 | none |",
        "| decontamination | 59 | 58 | `contaminated` 1 |",
        "exact pass",
        "| arc_challenge | 1 |",
        "2026-01-02",
        "CC BY-NC 4.0",
        "eprint     = {2304.14402}",
    ):
        assert needle.lower() in text.lower(), needle
    assert "Not recorded as run" not in text
    # only the system message's hash is in the records: the instruction prompts are not claimed
    assert EXAMPLE_GUIDED_TEMPLATE not in text and "example_guided" not in text


def test_card_claims_no_step_that_did_not_run(tmp_path):
    ds, reports = reports_for(make_ds(), tmp_path)
    text = dataset_card(ds, Manifest(stage="filter", reports=reports[:2])).text
    assert "Decontamination" not in text and "arc_challenge" not in text
    assert "Not recorded as run on this data: decontamination." in text
    bare = dataset_card(ds.remove_columns(["response_prompt_version", "teacher_model"])).text
    assert "No processing steps are recorded for this data." in bare
    assert "Not recorded as run on this data: dedup, filters, decontamination." in bare
    assert "Prompts used: not recorded" in bare and SYSTEM_MESSAGE not in bare
    assert "Teacher model(s) for responses: not recorded" in bare


def test_build_release_folder(tmp_path):
    ds, reports = reports_for(make_ds(), tmp_path)
    upstream = Manifest(stage="decontaminate", reports=reports, teacher_models=["gpt-3.5-turbo"])
    out = build_release(ds, tmp_path / "release", manifest=upstream, embed="tfidf", max_shard_rows=40)
    names = sorted(p.relative_to(out).as_posix() for p in (tmp_path / "release").rglob("*") if p.is_file())
    assert names == [
        "README.md",
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
        "lamini_lm.json",
        "plots/counts_per_source.png",
        "plots/diversity_map.png",
        "plots/lengths.png",
        "plots/verb_noun.png",
    ]
    back = datasets.load_dataset(str(out), split="train")  # the layout datasets loads natively
    assert back["instruction"][:] == ds["instruction"][:]
    assert back.column_names == ["instruction", "response", "instruction_source", "teacher_model"]
    card = DatasetCard.load(tmp_path / "release/README.md")
    assert "](plots/lengths.png)" in card.text and "Tokens: 1,740 prompt" in card.text
    manifest = read_manifest(out)
    assert [r["step"] for r in manifest.reports] == ["dedup", "filters", "decontamination", "release"]
    assert manifest.rows == 58 and manifest.teacher_models == ["gpt-3.5-turbo"]
    assert manifest.tokens == {"prompt": 1740, "completion": 696} and manifest.cost_usd == pytest.approx(0.029)
    assert manifest.report("release").details["dropped_columns"] == [
        "request_key", "prompt_tokens", "completion_tokens", "cost_usd", "response_prompt_version",
    ]  # fmt: skip
    kept = build_release(ds, tmp_path / "full", embed="none", keep_internal_columns=True)
    assert "request_key" in datasets.load_dataset(str(kept), split="train").column_names


def test_release_leaves_out_failed_rows_and_keeps_user_files(tmp_path):
    ds = make_ds(9).add_column("error", [None, "timeout"] + [None] * 7)
    out = build_release(ds, tmp_path / "release", embed="none")
    assert len(datasets.load_dataset(str(out), split="train")) == 8
    assert read_manifest(out).report("release").removed == {"failed_request": 1}
    build_release(ds, out, embed="none")  # its own artifact: replaced
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="notes.txt"):
        build_release(ds, mine, embed="none")
    assert (mine / "notes.txt").read_text() == "keep me" and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_card_renders_only_what_the_records_say(tmp_path, monkeypatch):
    """Spend of every generation stage upstream (instructions too, never "$0.00" for money spent), only the prompt
    strategies whose rows are in the data, local teachers by absolute path and what their manifest says they are."""
    monkeypatch.chdir(tmp_path)
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    Manifest(stage="toy-teacher", extra={"description": "a toy GPT-2"}).save(teacher)
    instructions, responses = tmp_path / "instructions", tmp_path / "responses"
    made = Manifest(
        stage="generate_instructions",
        tokens={"prompt": 600, "completion": 200},
        cost_usd=0.0009,
        teacher_models=["teacher"],
        prompt_hashes={
            "example_guided": PROMPT_HASHES["example_guided"],
            "topic_guided": PROMPT_HASHES["topic_guided"],
        },
    )
    made.save(instructions.mkdir() or instructions)
    answered = Manifest(
        stage="generate_responses",
        inputs=[{"role": "input", "artifact": str(instructions), "manifest_id": made.id}],
        tokens={"prompt": 400, "completion": 100},
        cost_usd=0.0003,
        teacher_models=["teacher"],
        prompt_hashes={"system_message": PROMPT_HASHES["system_message"]},
    )
    answered.save(responses.mkdir() or responses)
    ds = datasets.Dataset.from_dict(
        {
            "instruction": ["Name a colour.", "Which planet is closest to the sun?"],
            "response": ["Red.", "Mercury."],
            "instruction_source": ["alpaca", "self_instruct_without_topic"],
            "teacher_model": ["teacher", "teacher"],
            "instruction_model": [None, "teacher"],
        }
    )
    entry = {"role": "input", "artifact": str(responses), "manifest_id": answered.id}
    out = build_release(ds, tmp_path / "release", manifest=answered, inputs=[entry], embed="none")
    text = (out / "README.md").read_text()
    assert "Cost: $0.0012" in text and "$0.00 " not in text and "$0.00\n" not in text
    assert "Tokens: 1,000 prompt + 300 completion (responses 400 + 100; instructions 600 + 200)" in text
    assert "example_guided" in text and "topic_guided" not in text  # no topic-guided row made it here
    assert f"Teacher model(s) for responses: {teacher} (a toy GPT-2)" in text
    assert "instructions from existing datasets and instructions the" in text and "Decontamination" not in text
    assert read_manifest(out).cost_usd == pytest.approx(0.0012)

    # The same teacher unpriced, and data with no generated row: said so, not "$0.00", no generation claimed.
    free = Manifest(stage="generate_responses", tokens={"prompt": 40, "completion": 10}, cost_usd=0.0)
    text = dataset_card(ds.select([0]), free).text
    assert "Cost: not priced ($0 recorded" in text and "$0.00" not in text
    assert "Teacher model(s) for generated instructions: none" in text
    assert "): instructions from existing datasets, answered by the teacher" in text
