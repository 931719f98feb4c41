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
