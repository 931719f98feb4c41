"""Evaluation results: the paper's metric per task, the average, files (JSON, Markdown, CSV) and model-index entries.

A results file (``results.json``) is what :func:`lamini_lm.evaluation.evaluate_model` returns::

    {"model": "runs/lamini-gpt-124m", "family": "causal", "wrapper": true, "average": 0.512,
     "tasks": {"sciq": {"metric": "acc_norm", "value": 0.83, "stderr": 0.012, "n": 1000,
                        "dataset": "allenai/sciq", "dataset_config": null, "split": "test"}, ...},
     "lm_eval": {... lm-eval's own results, configs, versions and n-samples ...}}

Values are fractions, as lm-eval reports them; tables show percentages, as the paper does.

Example:
    >>> from lamini_lm.evaluation import load_results, format_table
    >>> print(format_table([load_results("eval/lamini-gpt-124m/results.json")]))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lamini_lm import __version__
from lamini_lm.families import get_family, list_families
from lamini_lm.io import write_text_atomic
from lamini_lm.paper import PAPER_TASKS, paper_metric, paper_task
from lamini_lm.prompts import PROMPT_HASHES

__all__ = [
    "eval_results_for_card",
    "format_table",
    "load_results",
    "results_frame",
    "save_results",
    "select_metric",
    "summarize",
]

logger = logging.getLogger(__name__)

_LM_EVAL_KEYS = (
    "results",
    "group_subtasks",
    "configs",
    "versions",
    "n-shot",
    "higher_is_better",
    "n-samples",
    "config",
    "lm_eval_version",
    "transformers_version",
    "date",
)


def select_metric(
    task: str,
    task_results: Mapping[str, Any],
    task_config: Mapping[str, Any] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> str:
    """The metric reported for ``task``. The rule, in order:

    1. ``overrides[task]`` when given;
    2. the paper's metric for the 15 paper tasks (acc, acc_norm or f1);
    3. the first metric of the task's ``metric_list`` (lm-eval's own order).

    Raises ``KeyError`` naming the task when the chosen metric is not among the task's results.
    """
    metric = (overrides or {}).get(task) or paper_metric(task)
    if metric is None:
        listed = [m.get("metric") for m in (task_config or {}).get("metric_list") or [] if isinstance(m, Mapping)]
        found = [k.split(",")[0] for k in task_results if "," in k and "_stderr" not in k]
        metric = next((m for m in listed if m in found), found[0] if found else None)
    if metric is None or not any(k.split(",")[0] == metric for k in task_results):
        available = sorted({k.split(",")[0] for k in task_results if "," in k and "_stderr" not in k})
        raise KeyError(f"task {task!r}: metric {metric!r} not in its results (available: {available})")
    return metric


def _value(task_results: Mapping[str, Any], key: str) -> float | None:
    # lm-eval keys are "metric,filter"; the zero-shot loglikelihood tasks use the "none" filter.
    hits = [k for k in task_results if k == f"{key},none"] or [k for k in task_results if k.split(",")[0] == key]
    if not hits:
        return None
    value = task_results[hits[0]]
    # numpy scalars (np.float32 from some metrics) are Real too; 'N/A' (no stderr) is not.
    return float(value) if isinstance(value, numbers.Real) else None


def _wrapper_hash(family: str | None) -> str | None:
    """The prompt hash of ``family``'s wrapper (None: raw contexts, or a family not registered here)."""
    return get_family(family).prompt_hash if family in list_families() else None


def summarize(
    raw: Mapping[str, Any],
    *,
    model: str,
    metrics: Mapping[str, str] | None = None,
    family: str | None = None,
    wrapper: bool | None = None,
) -> dict:
    """Turn ``lm_eval.simple_evaluate``'s output into a results dict (see the module doc); groups are skipped."""
    groups = {g for g, subtasks in (raw.get("group_subtasks") or {}).items() if subtasks}
    configs = raw.get("configs") or {}
    tasks = {}
    for task, task_results in raw["results"].items():
        if task in groups:
            continue
        metric = select_metric(task, task_results, configs.get(task), metrics)
        config = configs.get(task) or {}
        paper = paper_task(task)
        tasks[task] = {
            "metric": metric,
            "value": _value(task_results, metric),
            "stderr": _value(task_results, f"{metric}_stderr"),
            "n": (raw.get("n-samples") or {}).get(task, {}).get("effective"),
            "name": paper.name if paper else task,
            # What lm-eval actually loaded when it says so; the paper's table only for results without configs.
            "dataset": config.get("dataset_path") if config else (paper.dataset if paper else None),
            "dataset_config": config.get("dataset_name") if config else (paper.dataset_config if paper else None),
            "split": (config.get("test_split") or config.get("validation_split"))
            if config
            else (paper.split if paper else None),
            # the paper's 15 are all scored as lm-eval multiple choice (ReCoRD's f1 included)
            "output_type": config.get("output_type") or ("multiple_choice" if paper else None),
        }
    scored = [t["value"] for t in tasks.values() if t["value"] is not None]
    summary = {
        "model": model,
        "family": family,
        "wrapper": wrapper,
        "prompt_hash": _wrapper_hash(family) if wrapper else None,
        "average": sum(scored) / len(scored) if scored else None,
        "tasks": tasks,
        "lamini_lm_version": __version__,
        "lm_eval": {k: raw[k] for k in _LM_EVAL_KEYS if k in raw},
    }
    if raw.get("samples"):  # log_samples=True: every request and the model's answer, per task
        summary["samples"] = raw["samples"]
    return summary


def _json_default(obj):
    # lm-eval configs can hold functions and numpy scalars; record them as text, the way lm-eval's tracker does.
    try:
        from lm_eval.utils import handle_non_serializable

        return handle_non_serializable(obj)
    except ImportError:  # pragma: no cover - lm_eval is the eval extra
        return str(obj)


def save_results(results: Mapping[str, Any], output_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``results.json``, ``results.md`` and ``results.csv`` to ``output_dir``; return their paths.

    Logged samples (``log_samples=True``) go to ``samples.jsonl``, one scored document per line with its task.
    """
    out = Path(output_dir)
    paths = {"json": out / "results.json", "markdown": out / "results.md", "csv": out / "results.csv"}
    samples = results.get("samples")
    results = {k: v for k, v in results.items() if k != "samples"}
    write_text_atomic(paths["json"], json.dumps(results, indent=2, default=_json_default, sort_keys=False) + "\n")
    write_text_atomic(paths["markdown"], format_table([results]) + "\n")
    write_text_atomic(paths["csv"], results_frame([results]).to_csv(index_label="task"))
    if samples:
        paths["samples"] = out / "samples.jsonl"
        lines = (
            json.dumps({"task": task, **row}, default=_json_default, ensure_ascii=False)
            for task, rows in samples.items()
            for row in rows
        )
        write_text_atomic(paths["samples"], "\n".join(lines) + "\n")
    return paths


def load_results(path: str | os.PathLike) -> dict:
    """Read a results file (or the ``results.json`` inside a folder), with errors that name the file."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"no results file at {path}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(data, dict) or "tasks" not in data or "model" not in data:
        raise ValueError(f"{path}: not a lamini-lm results file (needs 'model' and 'tasks'; see `lamini-lm evaluate`)")
    return data


def _label(results: Mapping[str, Any]) -> str:
    model = str(results.get("model") or "model")
    return Path(model.rstrip("/")).name or model


def results_frame(results_list: Sequence[Mapping[str, Any]], labels: Sequence[str] | None = None):
    """A ``pandas.DataFrame``: one row per task (paper order first) plus ``Average``, one column per model, in %."""
    import pandas as pd

    labels = list(labels) if labels else [_label(r) for r in results_list]
    order = [t.task for t in PAPER_TASKS]
    seen = {t for r in results_list for t in r["tasks"]}
    rows = [t for t in order if t in seen] + sorted(seen - set(order))
    data = {}
    for label, r in zip(labels, results_list):
        col = {
            t: (100 * r["tasks"][t]["value"] if t in r["tasks"] and r["tasks"][t]["value"] is not None else math.nan)
            for t in rows
        }
        col["Average"] = 100 * r["average"] if r.get("average") is not None else math.nan
        data[label] = col
    frame = pd.DataFrame(data, index=[*rows, "Average"])
    metric_of = {t: next((r["tasks"][t]["metric"] for r in results_list if t in r["tasks"]), "") for t in rows}
    frame.insert(0, "metric", [metric_of.get(t, "") for t in frame.index])
    return frame


def format_table(results_list: Sequence[Mapping[str, Any]], labels: Sequence[str] | None = None) -> str:
    """A Markdown table of tasks x models, in percent with one decimal, the paper's way."""
    frame = results_frame(results_list, labels)
    header = ["task", *frame.columns]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + " |"]
    for task, row in frame.iterrows():
        cells = [str(task), str(row["metric"])]
        cells += ["" if math.isnan(v) else f"{v:.1f}" for v in row.iloc[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# lm-eval output types -> Hub task ids for model-index.
_HUB_TASK_TYPES = {"multiple_choice": "multiple-choice", "generate_until": "text-generation"}


def eval_results_for_card(results: Mapping[str, Any] | str | os.PathLike, model_name: str) -> list:
    """``huggingface_hub.EvalResult`` entries (one per task) for a model card's ``model-index``.

    Example:
        >>> from huggingface_hub import ModelCardData
        >>> entries = eval_results_for_card("eval/lamini-gpt-124m/results.json", "LaMini-GPT-124M")  # doctest: +SKIP
        >>> ModelCardData(model_name="LaMini-GPT-124M", eval_results=entries)  # doctest: +SKIP
    """
    from huggingface_hub import EvalResult

    if not isinstance(results, Mapping):
        results = load_results(results)
    hash_ = results.get("prompt_hash") if results.get("wrapper") else None
    wrapped = "" if not hash_ else ", Alpaca wrapper" if hash_ == PROMPT_HASHES["alpaca_wrapper"] else ", wrapper"
    source = "lm-evaluation-harness, zero-shot" + wrapped
    entries = []
    for task, r in results["tasks"].items():
        if r.get("value") is None:
            continue
        entries.append(
            EvalResult(
                task_type=_HUB_TASK_TYPES.get(r.get("output_type"), "text-generation"),
                task_name=r.get("name") or task,
                dataset_type=r.get("dataset") or task,
                dataset_name=r.get("name") or task,
                dataset_config=r.get("dataset_config"),
                dataset_split=r.get("split"),
                metric_type=r["metric"],
                metric_value=round(100 * r["value"], 2),
                metric_name=f"{r['metric']} (zero-shot)",
                source_name=source,
                source_url="https://github.com/EleutherAI/lm-evaluation-harness",
            )
        )
    if not entries:
        raise ValueError(f"results for {model_name!r} hold no scored task")
    return entries
