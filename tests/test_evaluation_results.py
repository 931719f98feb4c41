"""Results files, metric selection, tables, `lamini-lm compare` and model-index entries (no model needed)."""

from __future__ import annotations

import json

import pytest

from lamini_lm.evaluation import (
    PAPER_TASKS,
    eval_results_for_card,
    format_table,
    load_results,
    results_frame,
    save_results,
    select_metric,
    summarize,
)


def _raw(scores: dict[str, dict[str, float]]) -> dict:
    """An lm-eval output shaped like simple_evaluate's, for the given task -> metric -> value."""
    results = {}
    for task, metrics in scores.items():
        results[task] = {"alias": task}
        for m, v in metrics.items():
            results[task][f"{m},none"] = v
            results[task][f"{m}_stderr,none"] = "N/A"
    return {
        "results": results,
        "group_subtasks": {t: [] for t in scores},
        "configs": {},
        "n-samples": {t: {"original": 10, "effective": 10} for t in scores},
    }


def test_metric_rule():
    assert select_metric("hellaswag", {"acc,none": 0.3, "acc_norm,none": 0.4}) == "acc_norm"
    assert select_metric("record", {"f1,none": 0.5, "em,none": 0.4}) == "f1"
    assert select_metric("mrpc", {"acc,none": 0.6, "f1,none": 0.7}) == "acc"
    config = {"metric_list": [{"metric": "exact_match"}, {"metric": "bleu"}]}
    assert select_metric("mine", {"bleu,none": 1.0, "exact_match,none": 0.2}, config) == "exact_match"
    assert select_metric("mine", {"bleu,none": 1.0, "exact_match,none": 0.2}, config, {"mine": "bleu"}) == "bleu"
    with pytest.raises(KeyError, match="'sciq'.*acc_norm"):
        select_metric("sciq", {"acc,none": 0.3})


def test_all_fifteen_paper_tasks_summarised_and_averaged():
    scores = {t.task: {"acc": 0.5, "acc_norm": 0.6, "f1": 0.7} for t in PAPER_TASKS}
    summary = summarize(_raw(scores), model="m", family="causal", wrapper=True)
    values = {t: r["value"] for t, r in summary["tasks"].items()}
    expected = {t.task: {"acc": 0.5, "acc_norm": 0.6, "f1": 0.7}[t.metric] for t in PAPER_TASKS}
    assert values == expected
    assert summary["average"] == pytest.approx(sum(expected.values()) / 15)
    assert summary["tasks"]["record"]["dataset"] == "aps/super_glue"  # the paper's table when lm-eval gives none
    assert summary["tasks"]["mnli_mismatch"]["split"] == "validation_mismatched"


def test_numpy_scalars_are_values_and_na_stderr_is_none():
    import numpy as np

    summary = summarize(_raw({"record": {"f1": np.float32(0.25)}}), model="m")
    assert summary["tasks"]["record"]["value"] == 0.25 and summary["tasks"]["record"]["stderr"] is None
    json.dumps(summary["tasks"])  # plain floats only (lm-eval's own numbers are handled by save_results)


def test_groups_are_not_averaged_twice():
    raw = _raw({"rte": {"acc": 0.5}, "wic": {"acc": 0.7}, "glue": {"acc": 0.6}})
    raw["group_subtasks"]["glue"] = ["rte", "wic"]
    summary = summarize(raw, model="m")
    assert set(summary["tasks"]) == {"rte", "wic"}
    assert summary["average"] == pytest.approx(0.6)


def test_files_round_trip_and_table(tmp_path):
    summary = summarize(_raw({"sciq": {"acc": 0.25, "acc_norm": 0.5}, "rte": {"acc": 0.75}}), model="runs/a")
    paths = save_results(summary, tmp_path / "a")
    assert load_results(tmp_path / "a") == json.loads(paths["json"].read_text())
    table = format_table([summary])
    assert "| sciq | acc_norm | 50.0 |" in table and "| Average |  | 62.5 |" in table
    frame = results_frame([summary, summary], labels=["x", "y"])
    assert list(frame.columns) == ["metric", "x", "y"] and frame.loc["Average", "y"] == 62.5


def test_load_results_names_the_bad_file(tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text('{"nope": 1}')
    with pytest.raises(ValueError, match=str(bad)):
        load_results(bad)
    with pytest.raises(FileNotFoundError, match="missing"):
        load_results(tmp_path / "missing.json")


def test_compare_prints_and_plots_with_paper_reference(tmp_path, capsys):
    from lamini_lm.cli import main

    a = summarize(_raw({"sciq": {"acc_norm": 0.5}, "rte": {"acc": 0.6}}), model="runs/lamini-gpt-124m")
    b = summarize(_raw({"sciq": {"acc_norm": 0.4}, "rte": {"acc": 0.5}}), model="gpt2")
    save_results(a, tmp_path / "a")
    save_results(b, tmp_path / "b")
    png, table = tmp_path / "cmp.png", tmp_path / "cmp.csv"
    argv = ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--output", str(png), "--table", str(table)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| task | metric | lamini-gpt-124m | gpt2 |" in out and "| Average |  | 55.0 | 45.0 |" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert table.read_text().splitlines()[0] == "task,metric,lamini-gpt-124m,gpt2"

    from lamini_lm.evaluation.plots import reference_models
    from lamini_lm.paper import PAPER_AVERAGES

    assert reference_models(["lamini-gpt-124m", "gpt2"], None, PAPER_AVERAGES) == ["LaMini-GPT-124M"]
    with pytest.raises(ValueError, match="LaMini-GPT-9B"):
        reference_models(["x"], ["LaMini-GPT-9B"], PAPER_AVERAGES)


def test_eval_results_for_card_feed_model_index(tmp_path):
    from huggingface_hub import ModelCardData

    summary = summarize(
        _raw({"sciq": {"acc": 0.25, "acc_norm": 0.5}, "record": {"f1": 0.3125}}),
        model="m",
        family="causal",
        wrapper=True,
    )
    save_results(summary, tmp_path)
    entries = eval_results_for_card(tmp_path / "results.json", "LaMini-GPT-124M")
    by_task = {e.task_name: e for e in entries}
    assert by_task["SciQ"].metric_type == "acc_norm" and by_task["SciQ"].metric_value == 50.0
    assert by_task["SciQ"].dataset_type == "allenai/sciq" and by_task["SciQ"].dataset_split == "test"
    assert by_task["ReCoRD"].metric_type == "f1" and by_task["ReCoRD"].metric_value == 31.25
    assert by_task["ReCoRD"].task_type == "multiple-choice"
    assert "Alpaca wrapper" in by_task["SciQ"].source_name
    card = ModelCardData(model_name="LaMini-GPT-124M", eval_results=entries).to_dict()
    assert card["model-index"][0]["name"] == "LaMini-GPT-124M" and len(card["model-index"][0]["results"]) == 2
