"""`lamini-lm quickstart` runs every stage offline, on CPU, and leaves what the README promises."""

from __future__ import annotations

import json

import pytest
import yaml

from lamini_lm.quickstart import QuickstartConfig


def test_offline_is_chosen_without_key_or_url(monkeypatch):
    assert QuickstartConfig().is_offline
    assert not QuickstartConfig(base_url="http://127.0.0.1:1/v1").is_offline
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert not QuickstartConfig().is_offline and QuickstartConfig(offline=True).is_offline


@pytest.mark.integration
def test_quickstart_offline_end_to_end(tmp_path, capsys):
    from lamini_lm.artifacts import read_manifest
    from lamini_lm.cli import main

    out = tmp_path / "quickstart-output"
    argv = ["quickstart", "--output", str(out), "--num_prompts", "2", "--eval_limit", "6", "--epochs", "1"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "OFFLINE MODE" in captured.err  # the banner says the teacher is a tiny local toy
    # The fitted toy teacher writes <example> lists that parse: generated rows go through every later stage.
    [parsed] = [line for line in captured.out.splitlines() if line.startswith("instructions: ")]
    assert int(parsed.split()[1]) > 0, parsed
    assert read_manifest(out / "instructions").report("parse_instructions").rows_out > 0
    import datasets

    release = datasets.load_dataset(str(out / "dataset"), split="train")
    generated = [s for s in release["instruction_source"] if s == "self_instruct_without_topic"]
    assert generated and "alpaca" in release["instruction_source"]
    assert read_manifest(out / "teacher").stage == "toy-teacher"
    # The evaluation line says the average is over synthetic tasks, none of the paper's, and how many rows each.
    [line] = [x for x in captured.out.splitlines() if x.startswith("evaluation: ")]
    assert "none of the paper's 15: demo_" in line and "/15" not in line and "n=6 each" in line, line

    summary = json.loads((out / "summary.json").read_text())
    assert summary["offline"] and summary["rows"] >= 4
    # The dataset: parquet, plots, card.
    assert list((out / "dataset" / "data").glob("train-*.parquet"))
    assert {p.name for p in (out / "dataset" / "plots").glob("*.png")} >= {"lengths.png"}
    data_card = (out / "dataset" / "README.md").read_text()
    assert data_card.startswith("---\n")
    # The dataset card says only what the records say: the strategy that made rows, no decontamination that did
    # not run, the teacher by absolute path and what it is, a cost that is not "$0.00".
    teacher = (out / "teacher").resolve()
    assert f"Teacher model(s) for responses: {teacher} (tiny local GPT-2" in data_card
    assert f"Teacher model(s) for generated instructions: {teacher} (" in data_card
    assert "example_guided" in data_card and "topic_guided" not in data_card
    assert "**Decontamination**" not in data_card and "Not recorded as run on this data: decontamination" in data_card
    assert "Cost: not priced" in data_card and "$0.00" not in data_card
    assert "SciQ" not in data_card and "; instructions " in data_card  # instruction generation's tokens counted
    # A trained student that loads and answers.
    student = out / "student"
    import lamini_lm

    assert isinstance(lamini_lm.generate(student, "Name three primary colours.", max_new_tokens=4), str)
    # Its evaluation and its model card, whose model-index holds the evaluation, one entry per task.
    results = json.loads((out / "eval" / "results.json").read_text())
    assert results["tasks"] and (out / "eval" / "results.png").is_file()
    card = (student / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert len(meta["model-index"][0]["results"]) == len(results["tasks"])
    # Synthetic demo tasks, named so, each with the rows it scored; no paper task name anywhere.
    names = [r["task"]["name"] for r in meta["model-index"][0]["results"]]
    assert names and all(n.startswith("demo_") for n in names), names
    assert all(f"| {n} | json:{n} | " in card and " | 6 |" in card for n in names)
    assert not any(paper in card for paper in ("SciQ", "RTE", "ReCoRD", "HellaSwag")), card
    assert f"**Teacher:** {teacher} (" in card
    # the local base the student started from, by what it is (not a Hub id, so not in the metadata)
    assert f"**Base model:** {(out / 'student-init').resolve()} (tiny T5 with random weights" in card, card
    assert "base_model" not in meta
    assert meta["pipeline_tag"] == "text2text-generation"

    # Every artifact carries its manifest, and the lineage runs from the student back to the teacher's answers.
    from lamini_lm.artifacts import lineage

    for name in ("instructions", "responses", "dedup", "filtered", "dataset", "student", "eval"):
        assert read_manifest(out / name) is not None, name
    assert read_manifest(out).stage == "quickstart" and read_manifest(out).extra["complete"]
    chain = lineage(out / "eval")
    stages = [m.stage for m in chain]
    assert stages[:4] == ["evaluate", "train", "release", "filter"] or stages[:4] == [
        "evaluate",
        "train",
        "release",
        "dedup",
    ]
    responses = next(m for m in chain if m.stage == "generate_responses")
    store = responses.input("teacher_store")
    assert store["path"] == str((out / "teacher.sqlite").resolve()) and store["answers"] > 0
    assert "generate_instructions" in stages

    # The quickstart built lamini_lm/instructions: a fresh process loads the quickstart's rows by name.
    import os
    import subprocess
    import sys

    code = "from datasets import load_dataset; print(len(load_dataset('lamini_lm/instructions', split='train')))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.strip()) == summary["rows"]
    # ... and `lamini-lm build` accepts the quickstart's release folder as it is.
    assert main(["build", "--generated", str(out / "dataset")]) == 0

    # A second run into the same folder replaces its own artifacts and pays the teacher for nothing.
    assert main(argv) == 0
    again = read_manifest(out / "responses")
    assert again.extra["to_send"] == 0 and again.extra["from_cache"] > 0


@pytest.mark.integration
def test_quickstart_refuses_a_folder_holding_a_users_files(tmp_path):
    from lamini_lm.cli import main

    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["quickstart", "--output", str(out)]) == 2
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"
