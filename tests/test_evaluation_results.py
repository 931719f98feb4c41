"""Results files, metric selection, tables, `lamini-lm compare` and model-index entries (no model needed)."""

from __future__ import annotations

import json
import subprocess
import sys

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
    assert summary["average_label"] == "average of the paper's 15 tasks"
    assert summary["average_tasks"] == [t.task for t in PAPER_TASKS]
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
    assert "| sciq | acc_norm | 50.0 |" in table and "| Average | average of 2/15 tasks: sciq, rte | 62.5 |" in table
    frame = results_frame([summary, summary], labels=["x", "y"])
    assert list(frame.columns) == ["metric", "x", "y"] and frame.loc["Average", "y"] == 62.5
    # the files a user opens say what the average covers, not just "Average"
    saved = json.loads(paths["json"].read_text())
    assert saved["average_tasks"] == ["sciq", "rte"] and saved["average_label"] == "average of 2/15 tasks: sciq, rte"
    assert "| Average | average of 2/15 tasks: sciq, rte | 62.5 |" in paths["markdown"].read_text()
    assert 'Average,"average of 2/15 tasks: sciq, rte",62.5' in paths["csv"].read_text()


def test_average_labels_say_what_they_cover():
    from lamini_lm.evaluation.results import average_label

    assert average_label([t.task for t in PAPER_TASKS][::-1]) == "average of the paper's 15 tasks"
    assert average_label(["rte", "sciq", "arc_challenge"]) == "average of 3/15 tasks: sciq, arc_challenge, rte"
    assert (
        average_label(["demo_sciq", "demo_rte"]) == "average of 2 tasks, none of the paper's 15: demo_rte, demo_sciq"
    )
    assert average_label(["sciq", "mine"]) == "average of 2 tasks, 1 of them the paper's: sciq, mine"
    # a task without a value is not in the average, and the label says so
    summary = summarize(_raw({"sciq": {"acc_norm": 0.5}, "rte": {"acc": "N/A"}}), model="m")
    assert summary["average"] == 0.5 and summary["average_label"] == "average of 1/15 tasks: sciq"


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
    # LaMini-GPT-124M's per-task numbers are not in the paper: its column is blank but for the 15-task average
    assert "| task | metric | lamini-gpt-124m | gpt2 | LaMini-GPT-124M (paper) |" in out
    assert "| Average | average of 2/15 tasks: sciq, rte | 55.0 | 45.0 |  |" in out
    assert "| Average (paper, 15 tasks) | the printed averages: not over the tasks above |  |  | 50.6 |" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert table.read_text().splitlines()[0] == "task,metric,lamini-gpt-124m,gpt2,LaMini-GPT-124M (paper)"

    from lamini_lm.evaluation.plots import reference_models
    from lamini_lm.paper import PAPER_AVERAGES

    assert reference_models(["lamini-gpt-124m", "gpt2"], None, PAPER_AVERAGES) == ["LaMini-GPT-124M"]
    with pytest.raises(ValueError, match="LaMini-GPT-9B"):
        reference_models(["x"], ["LaMini-GPT-9B"], PAPER_AVERAGES)
    # an unknown --reference is a usage error (exit 2) naming the flag, not a traceback
    proc = subprocess.run(
        [sys.executable, "-m", "lamini_lm.cli", "compare", str(tmp_path / "a"), "--reference", "LaMini-GPT-9B"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "--reference" in proc.stderr and "Traceback" not in proc.stderr


def test_reference_models_match_base_models_by_hub_id():
    from lamini_lm.paper import PAPER_AVERAGES, reference_models

    # the base models the docs tell users to evaluate, by their Hub ids; the longest match wins
    names = ["eval/gpt2-xl", "google/flan-t5-large", "t5-large", "runs/lamini-flan-t5-783m", "my-model"]
    assert reference_models(names) == ["LaMini-Flan-T5-783M", "T5-738M", "Flan-T5-783M", "GPT-2-XL"]
    assert len(reference_models([], ["all"], PAPER_AVERAGES)) == 21


def _paper_like(model: str, tasks, zero: str | None = None) -> dict:
    """A results dict scoring the paper's GPT-2-XL numbers on ``tasks`` (``zero``: that task scores 0)."""
    from lamini_lm.paper import PAPER_SCORES, paper_metric

    scores = {t: {paper_metric(t): PAPER_SCORES["GPT-2-XL"][t] / 100} for t in tasks}
    if zero:
        scores[zero] = {paper_metric(zero): 0.0}
    return summarize(_raw(scores), model=model)


def test_compare_shows_the_paper_per_task_and_over_the_same_tasks(tmp_path):
    """A 3-task run of gpt2-xl beside the paper's GPT-2-XL column: per task, and averaged over the same 3 tasks."""
    save_results(_paper_like("gpt2-xl", ["sciq", "rte", "arc_challenge"]), tmp_path / "gpt2-xl")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lamini_lm.cli",
            "compare",
            str(tmp_path / "gpt2-xl"),
            "--output",
            str(tmp_path / "c.png"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = proc.stdout.splitlines()
    assert lines[0] == "| task | metric | gpt2-xl | GPT-2-XL (paper) |"
    assert "| sciq | acc_norm | 76.1 | 76.1 |" in lines and "| rte | acc | 52.3 | 52.3 |" in lines
    # (76.1 + 28.5 + 52.3) / 3 = 52.3: the paper's numbers over the same tasks, not its 15-task 53.0
    assert "| Average | average of 3/15 tasks: sciq, arc_challenge, rte | 52.3 | 52.3 |" in lines
    assert "| Average (paper, 15 tasks) | the printed averages: not over the tasks above |  | 53.0 |" in lines


def test_compare_full_run_uses_the_printed_averages(tmp_path):
    full = _paper_like("runs/gpt2-xl", [t.task for t in PAPER_TASKS])
    frame = results_frame([full], reference=["GPT-2-XL", "LaMini-Neo-125M"])
    assert frame.loc["Average", "metric"] == "average of the paper's 15 tasks"
    assert frame.loc["Average", "gpt2-xl"] == pytest.approx(53.0, abs=0.05)
    assert frame.loc["Average", "GPT-2-XL (paper)"] == 53.0 and frame.loc["Average", "LaMini-Neo-125M (paper)"] == 46.2
    assert "Average (paper, 15 tasks)" not in frame.index  # nothing to keep apart when the tasks are the same


def _png_size(path) -> tuple[int, int]:
    import struct

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_plot_reference_all_is_laid_out_and_zero_is_written(tmp_path):
    """--reference all: every label has its own place (no overlapping text), nothing drawn outside the figure,
    and a task scoring 0 carries its value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lamini_lm.evaluation.plots import plot_comparison

    results = [_paper_like("lamini-gpt-1.5b", [t.task for t in PAPER_TASKS], zero="rte")]
    figures = []
    original = plt.close
    plt.close = lambda fig=None: figures.append(fig)  # keep the figure to inspect what was drawn
    try:
        out = plot_comparison(results, tmp_path / "all.png", reference=["all"])
    finally:
        plt.close = original
    fig = figures[0]
    width, height = _png_size(out)
    assert width > 1000 and height > 1000
    renderer = fig.canvas.get_renderer()
    axes = fig.get_axes()
    assert len(axes) == 15 + 1  # one chart per task, then the averages (same tasks: no chart apart)
    by_title = {ax.get_title(): ax for ax in axes}
    rte = by_title["rte (acc)"]
    values = [t.get_text() for t in rte.texts]
    assert values[0] == "0.0" and "67.9" in values and "52.3" in values  # yours (0) then the paper's
    averages = axes[-1]
    assert averages.get_title(loc="left").startswith("average of the paper's 15 tasks")
    labels = [t.get_text() for t in averages.get_yticklabels()]
    assert len(labels) == 1 + 21 and "GPT-2-XL (paper)" in labels
    fig_box = fig.bbox
    for ax in axes:
        boxes = [t.get_window_extent(renderer) for t in ax.texts + ax.get_yticklabels() if t.get_text()]
        for i, a in enumerate(boxes):
            assert a.x1 <= fig_box.x1 + 1 and a.y0 >= -1  # inside the figure: nothing clipped at the edge
            assert not any(a.overlaps(b) for b in boxes[i + 1 :]), ax.get_title()
    plt.close(fig)


def _drawn(results, path, **kwargs):
    """The figure plot_comparison draws (kept open to inspect), as {title: axes}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lamini_lm.evaluation.plots import plot_comparison

    figures = []
    original = plt.close
    plt.close = lambda fig=None: figures.append(fig)
    try:
        plot_comparison(results, path, **kwargs)
    finally:
        plt.close = original
    fig = figures[0]
    axes = {ax.get_title(loc="left") or ax.get_title(): ax for ax in fig.get_axes()}
    plt.close(fig)
    return axes


def test_a_plot_title_names_hatched_bars_only_where_they_are_drawn(tmp_path):
    """demo_* tasks have no paper numbers: no hatched bar on the averages chart, so its title does not promise any
    (the paper's printed 15-task average still gets its own chart); a run of the paper's tasks keeps the note."""
    scores = {"demo_choice": {"acc_norm": 0.5}, "demo_entailment": {"acc": 0.6}}
    demo = summarize(_raw(scores), model="lamini-gpt-124m")
    paper = _paper_like("gpt2-xl", ["sciq", "rte", "arc_challenge"])
    for results, hatched_average in (([demo], False), ([paper], True)):
        axes = _drawn(results, tmp_path / "c.png")
        assert sum("average" in title for title in axes) == 2  # the tasks' average, and the paper's printed one apart
        for title, ax in axes.items():
            has_hatch = any(p.get_hatch() for p in ax.patches)
            if title.startswith("average of"):  # the note is there exactly when the paper's bars are
                assert has_hatch is hatched_average and ("hatched" in title) is has_hatch, title
            assert has_hatch or "hatched" not in title, title


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
