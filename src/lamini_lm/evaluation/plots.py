"""PNG plots: benchmark results beside the paper's averages, and rubric grades as stacked bars like the paper's.

Example:
    >>> from lamini_lm.evaluation import load_results
    >>> from lamini_lm.evaluation.plots import plot_comparison
    >>> plot_comparison([load_results("eval/a"), load_results("eval/b")], "comparison.png")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lamini_lm.paper import PAPER_AVERAGES, PAPER_RUBRIC

__all__ = ["GRADE_COLOURS", "plot_comparison", "plot_rubric", "reference_models"]

logger = logging.getLogger(__name__)

GRADE_COLOURS = {"A": "#2e7d32", "B": "#9ccc65", "C": "#ffb300", "D": "#e53935", "unparsed": "#9e9e9e"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def reference_models(labels: Sequence[str], reference: Sequence[str] | None, table: Mapping[str, Any]) -> list[str]:
    """Which of the paper's models to draw: ``reference`` names (``"all"`` for every one), or by default the
    paper models whose name appears in a compared label (``lamini-gpt-124m`` -> ``LaMini-GPT-124M``)."""
    if reference and any(r.lower() == "all" for r in reference):
        return list(table)
    if reference:
        unknown = [r for r in reference if r not in table]
        if unknown:
            raise ValueError(f"unknown paper model(s) {unknown}; known: {sorted(table)}")
        return list(reference)
    return [m for m in table if any(_norm(m) in _norm(label) for label in labels)]


def plot_comparison(
    results_list: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    labels: Sequence[str] | None = None,
    reference: Sequence[str] | None = None,
) -> Path:
    """Per-task bars of each model (left) and their averages with the paper's averages as lines (right)."""
    from lamini_lm.evaluation.results import results_frame

    plt = _pyplot()
    frame = results_frame(results_list, labels).drop(columns="metric")
    models = list(frame.columns)
    tasks = [t for t in frame.index if t != "Average"]
    refs = reference_models(models, reference, PAPER_AVERAGES)
    fig, (ax, ax_avg) = plt.subplots(
        1,
        2,
        figsize=(min(14.0, 5 + 0.45 * len(tasks) * max(1, len(models)) ** 0.5), 4.8),
        gridspec_kw={"width_ratios": [max(3, len(tasks)), max(3, len(models) + 2)]},
    )
    width = 0.8 / max(1, len(models))
    for i, model in enumerate(models):
        xs = [k + (i - (len(models) - 1) / 2) * width for k in range(len(tasks))]
        ax.bar(xs, frame.loc[tasks, model].fillna(0), width, label=model)
        ax_avg.bar(i, frame.loc["Average", model], 0.7, color=f"C{i}")
        ax_avg.text(i, frame.loc["Average", model], f"{frame.loc['Average', model]:.1f}", ha="center", va="bottom")
    ax.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right")
    ax.set_ylabel("score (%)")
    ax.set_ylim(0, 100)
    ax.set_title("per task (paper's metric)")
    ax.legend(fontsize="small")
    for j, name in enumerate(refs):
        value = PAPER_AVERAGES[name]
        ax_avg.axhline(value, color="0.3", linestyle=(0, (3, 2 + j % 3)), linewidth=0.9)
        ax_avg.text(len(models) - 0.5, value, f"{name} {value:.1f}", va="bottom", fontsize="x-small", color="0.3")
    ax_avg.set_xticks(range(len(models)), models, rotation=45, ha="right")
    ax_avg.set_xlim(-0.6, len(models) + 0.8)
    ax_avg.set_ylim(0, 100)
    ax_avg.set_title("average" + (" (lines: the paper)" if refs else ""))
    fig.tight_layout()
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_rubric(
    counts: Mapping[str, Mapping[str, int]],
    path: str | os.PathLike,
    reference: Sequence[str] | None = ("all",),
    title: str = "Rubric grades (A best, D worst)",
) -> Path:
    """Horizontal stacked bars of A/B/C/D counts per model (yours first, then the paper's), like the paper's plot.

    Bars show shares of each model's answers so runs of different sizes line up; the counts are written inside.
    """
    plt = _pyplot()
    rows = {name: dict(c) for name, c in counts.items()}
    for name in reference_models(list(counts), reference, PAPER_RUBRIC):
        rows.setdefault(f"{name} (paper)", dict(PAPER_RUBRIC[name]))
    grades = ["A", "B", "C", "D"] + (["unparsed"] if any(r.get("unparsed") for r in rows.values()) else [])
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    names = list(rows)[::-1]  # first model on top
    for y, name in enumerate(names):
        total = sum(rows[name].get(g, 0) for g in grades) or 1
        left = 0.0
        for g in grades:
            n = rows[name].get(g, 0)
            share = 100 * n / total
            ax.barh(y, share, left=left, color=GRADE_COLOURS[g], label=g if y == 0 else None, edgecolor="white")
            if n and share >= 4:
                ax.text(left + share / 2, y, str(n), ha="center", va="center", fontsize="small")
            left += share
    ax.set_yticks(range(len(names)), names)
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of answers")
    ax.set_title(title)
    ax.legend(ncol=len(grades), loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.6 / len(rows)), frameon=False)
    fig.tight_layout()
    out = _save(fig, path)
    plt.close(fig)
    return out
