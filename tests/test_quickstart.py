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
    from lamini_lm.cli import main

    out = tmp_path / "quickstart-output"
    argv = ["quickstart", "--output", str(out), "--num_prompts", "1", "--eval_limit", "6", "--epochs", "1"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "OFFLINE MODE" in captured.err  # the banner says the teacher is a tiny random local model

    summary = json.loads((out / "summary.json").read_text())
    assert summary["offline"] and summary["rows"] >= 4
    # The dataset: parquet, plots, card.
    assert list((out / "dataset" / "data").glob("train-*.parquet"))
    assert {p.name for p in (out / "dataset" / "plots").glob("*.png")} >= {"lengths.png"}
    assert (out / "dataset" / "README.md").read_text().startswith("---\n")
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
    assert meta["pipeline_tag"] == "text2text-generation"

    # Every artifact carries its manifest, and the lineage runs from the student back to the teacher's answers.
    from lamini_lm.artifacts import lineage, read_manifest

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
