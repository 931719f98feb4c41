"""PNG plots: benchmark results beside the paper's numbers, and rubric grades as stacked bars like the paper's.

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

from lamini_lm.paper import PAPER_AVERAGES, PAPER_RUBRIC, PAPER_SCORES, reference_models

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


_PAPER_HATCH = "////"


def _hbars(ax, names, values, colours, hatches, *, value_fmt="{:.1f}"):
    """Horizontal bars top to bottom, each with its value written at its end (0 shows "0.0", missing "n/a")."""
    ys = list(range(len(names)))[::-1]
    for y, v, c, h in zip(ys, values, colours, hatches):
        missing = v != v  # NaN
        ax.barh(y, 0 if missing else v, 0.8, color=c, hatch=h, edgecolor="0.3" if h else "white", linewidth=0.5)
        ax.text((0 if missing else v) + 1, y, "n/a" if missing else value_fmt.format(v), va="center", fontsize=7)
    ax.set_xlim(0, 112)  # room for the value after a bar at 100
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.set_xticks([0, 25, 50, 75, 100])
    ax.tick_params(axis="both", labelsize=7)
    ax.grid(axis="x", color="0.9", linewidth=0.6)
    ax.set_axisbelow(True)
    return ys


def plot_comparison(
    results_list: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    labels: Sequence[str] | None = None,
    reference: Sequence[str] | None = None,
) -> Path:
    """One small chart per task (your models, then the paper's per-task numbers hatched), then the averages.

    ``reference``: paper models to show (``"all"`` for every one; default: those a compared model's name matches,
    see :func:`lamini_lm.paper.reference_models`). The averages chart compares like with like: when your models
    scored fewer than the paper's 15 tasks, its title names the tasks and the paper's bars are the paper's
    per-task numbers averaged over the same tasks; the paper's printed 15-task averages sit in a third chart of
    their own, titled so.
    """
    import math

    from lamini_lm.evaluation.results import PAPER_AVERAGE_ROW, PAPER_SUFFIX, _label, results_frame

    plt = _pyplot()
    labels = list(labels) if labels else [_label(r) for r in results_list]
    names = labels + [str(r.get("model", "")) for r in results_list]
    refs = reference_models(names, reference, PAPER_AVERAGES)
    frame = results_frame(results_list, labels, refs)
    what = frame.loc["Average", "metric"]
    tasks = [t for t in frame.index if t not in ("Average", PAPER_AVERAGE_ROW)]
    per_task_refs = [m for m in refs if m in PAPER_SCORES and any(t in PAPER_SCORES[m] for t in tasks)]

    # yours in colour; the paper's grey and hatched (its LaMini students lighter than its other models)
    palette = plt.get_cmap("tab10")
    colour = {m: palette(i % palette.N) for i, m in enumerate(labels)}
    hatch = dict.fromkeys(labels, "")
    for m in refs:
        colour[m + PAPER_SUFFIX] = "0.85" if m.startswith("LaMini-") else "0.65"
        hatch[m + PAPER_SUFFIX] = _PAPER_HATCH

    bar_models = labels + [m + PAPER_SUFFIX for m in per_task_refs]
    avg_models = labels + [m + PAPER_SUFFIX for m in refs if not math.isnan(frame.loc["Average", m + PAPER_SUFFIX])]
    apart = [m + PAPER_SUFFIX for m in refs] if PAPER_AVERAGE_ROW in frame.index else []

    ncols = min(3, max(1, len(tasks)))
    nrows = math.ceil(len(tasks) / ncols) if tasks else 0
    task_h = 0.17 * len(bar_models) + 0.55
    avg_h = [0.17 * len(avg_models) + 0.75] + ([0.17 * len(apart) + 0.75] if apart else [])
    fig = plt.figure(figsize=(3.3 * ncols + 1.8, task_h * nrows + sum(avg_h) + 0.6), layout="constrained")
    grid = fig.add_gridspec(nrows + len(avg_h), ncols, height_ratios=[task_h] * nrows + avg_h)
    for k, task in enumerate(tasks):
        ax = fig.add_subplot(grid[k // ncols, k % ncols])
        ys = _hbars(
            ax,
            bar_models,
            [frame.loc[task, m] for m in bar_models],
            [colour[m] for m in bar_models],
            [hatch[m] for m in bar_models],
        )
        ax.set_yticks(ys, bar_models if k % ncols == 0 else [""] * len(ys), fontsize=7)
        metric = frame.loc[task, "metric"]
        ax.set_title(f"{task} ({metric})" if metric else task, fontsize=8)

    def averages(row, models, title):
        ax = fig.add_subplot(grid[row, :])
        values = [frame.loc["Average" if row == nrows else PAPER_AVERAGE_ROW, m] for m in models]
        ys = _hbars(ax, models, values, [colour[m] for m in models], [hatch[m] for m in models])
        ax.set_yticks(ys, models, fontsize=7)
        ax.set_title(title, fontsize=8, loc="left")
        ax.set_xlabel("score (%)", fontsize=7)

    # the paper's bars on the averages chart exist only when it scored the same tasks (not for demo_* or your own)
    hatched = len(avg_models) > len(labels)
    averages(nrows, avg_models, what + ("; hatched: the paper's numbers on the same tasks" if hatched else ""))
    if apart:
        averages(nrows + 1, apart, "the paper's printed averages over all 15 tasks (not the tasks above)")
    fig.suptitle("zero-shot scores, the paper's metric per task (%)", fontsize=9)
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
