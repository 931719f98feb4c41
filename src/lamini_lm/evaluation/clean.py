"""Clean vs contaminated scores: each task scored again on the benchmark items that share no n-gram with the
training data, as lm-evaluation-harness's post hoc decontamination intended.

An item (an lm-eval document) is *contaminated* when one of its strings (question, passage, choices, endings...)
shares a word 13-gram with the ``instruction`` or ``response`` of a training row: the test of
:mod:`lamini_lm.quality.decontaminate`, with its tokenisation and :class:`~lamini_lm.quality.decontaminate.NgramIndex`
(one implementation), turned around: the benchmark's n-grams are indexed, the training rows are scanned once, and
each item is clean or not. The clean score aggregates lm-eval's own per-item values (``log_samples``) over the
clean items with the task's own aggregation (mean for acc/acc_norm, lm-eval's f1 for f1 items), so nothing is
scored twice.

Example:
    >>> from lamini_lm.evaluation import evaluate_model
    >>> results = evaluate_model("runs/gpt2", tasks=["sciq"], clean_against="runs/clean")  # doctest: +SKIP
    >>> results["tasks"]["sciq"]["clean"]  # doctest: +SKIP
    {'value': 0.61, 'n': 980, 'contaminated': 20, 'contaminated_value': 0.9}
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["DEFAULT_CLEAN_NGRAM", "clean_scores", "contaminated_items", "format_clean_table", "load_training"]

logger = logging.getLogger(__name__)

DEFAULT_CLEAN_NGRAM = 13  # decontaminate's default, GPT-3's and lm-eval's
_BATCH = 50_000  # training rows tokenised at a time


def _task_samples(samples: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One logged sample per document: the ``none`` filter's (the one results report), else the first filter's."""
    filters = [s.get("filter") for s in samples]
    keep = "none" if "none" in filters else (filters[0] if filters else None)
    return [s for s in samples if s.get("filter") == keep]


def load_training(source: Any):
    """The training rows to test items against: a Dataset as it is, else :func:`lamini_lm.io.load_table` of a
    file or ``save_to_disk`` folder; it must have an ``instruction`` column (checked before any scoring)."""
    from lamini_lm.errors import DataError
    from lamini_lm.io import load_table

    if hasattr(source, "column_names"):
        ds = source
    else:
        if not os.path.exists(source):
            raise FileNotFoundError(f"--clean_against {source}: no such file or dataset folder")
        ds = load_table(os.fspath(source))
    if "instruction" not in ds.column_names:
        raise DataError(
            f"--clean_against {source}: no 'instruction' column (its columns: {', '.join(ds.column_names)}); "
            "give the training data (instruction, response)"
        )
    return ds


def contaminated_items(
    docs_by_task: Mapping[str, Sequence[Any]],
    training: Any,
    *,
    ngram: int = DEFAULT_CLEAN_NGRAM,
    columns: Sequence[str] = ("instruction", "response"),
) -> dict[str, np.ndarray]:
    """Per task, a boolean array: which of its documents share an ``ngram``-gram with ``training``.

    ``training``: see :func:`load_training`; its ``columns`` that exist are scanned (``instruction`` is required).
    """
    from lamini_lm.quality.decontaminate import NgramIndex, _strings
    from lamini_lm.quality.text import ngram_hashes, tokenize_texts

    strings = {task: [list(_strings(doc)) for doc in docs] for task, docs in docs_by_task.items()}
    index = NgramIndex({task: [s for doc in docs for s in doc] for task, docs in strings.items()}, ngram=ngram)
    ds = load_training(training)
    hit = []
    for column in [c for c in columns if c in ds.column_names]:
        for start in range(0, len(ds), _BATCH):
            texts = [t or "" for t in ds[start : start + _BATCH][column]]
            hashes, _ = ngram_hashes(tokenize_texts(texts), ngram)
            found = hashes[index.lookup(hashes) != 0]
            if len(found):
                hit.append(np.unique(found))
    shared = np.unique(np.concatenate(hit)) if hit else np.zeros(0, dtype=np.uint64)
    out = {}
    for task, docs in strings.items():
        owner = np.repeat(np.arange(len(docs)), [len(d) for d in docs])  # string -> its document
        flat = [s for d in docs for s in d]
        hashes, rows = ngram_hashes(tokenize_texts(flat), ngram)
        dirty = np.zeros(len(docs), dtype=bool)
        if len(hashes) and len(shared):
            dirty[owner[rows[np.isin(hashes, shared)]]] = True
        out[task] = dirty
    return out


def _aggregation(metric: str, task_config: Mapping[str, Any] | None):
    """The task's aggregation of ``metric`` (its metric_list's ``aggregation``, else lm-eval's default for it)."""
    from lm_eval.api.registry import get_aggregation, get_metric_aggregation

    for entry in (task_config or {}).get("metric_list") or []:
        if isinstance(entry, Mapping) and entry.get("metric") == metric and isinstance(entry.get("aggregation"), str):
            return get_aggregation(entry["aggregation"])
    try:
        return get_metric_aggregation(metric)
    except Exception:  # a metric lm-eval has no default for: a mean, as lm-eval falls back to
        return None


def _aggregate(values: list, agg) -> float | None:
    if not values:
        return None
    if agg is None:
        return float(np.mean([float(v) for v in values]))
    return float(agg(values))


def clean_scores(
    raw: Mapping[str, Any],
    results: Mapping[str, Any],
    training: Any,
    *,
    ngram: int = DEFAULT_CLEAN_NGRAM,
    columns: Sequence[str] = ("instruction", "response"),
) -> dict[str, dict[str, Any]]:
    """Per task of ``results`` (a :func:`~lamini_lm.evaluation.results.summarize` dict), its metric on the clean
    items: ``{"value", "n", "contaminated", "contaminated_value"}``. ``raw`` is ``lm_eval.simple_evaluate``'s output
    with ``log_samples=True``."""
    samples = raw.get("samples") or {}
    tasks = [t for t in results["tasks"] if t in samples]
    missing = [t for t in results["tasks"] if t not in samples]
    if missing:
        logger.warning("no logged samples for %s: no clean score", ", ".join(missing))
    per_task = {t: _task_samples(samples[t]) for t in tasks}
    docs = {t: [s["doc"] for s in per_task[t]] for t in tasks}
    dirty = contaminated_items(docs, training, ngram=ngram, columns=columns)
    out = {}
    for task in tasks:
        metric = results["tasks"][task]["metric"]
        agg = _aggregation(metric, (raw.get("configs") or {}).get(task))
        values = [s.get(metric) for s in per_task[task]]
        clean = [v for v, d in zip(values, dirty[task]) if not d and v is not None]
        bad = [v for v, d in zip(values, dirty[task]) if d and v is not None]
        out[task] = {
            "value": _aggregate(clean, agg),
            "n": len(clean),
            "contaminated": len(bad),
            "contaminated_value": _aggregate(bad, agg),
        }
        if bad:
            share = f"share a {ngram}-gram with the training data"
            logger.info("%s: %d of %d items %s", task, len(bad), len(values), share)
    return out


def format_clean_table(results: Mapping[str, Any]) -> str:
    """A Markdown table: per task its metric on all items, on the clean ones and on the contaminated ones (%, n)."""
    about = results.get("clean_against") or {}
    lines = [
        f"Clean subsets: items sharing no {about.get('ngram', DEFAULT_CLEAN_NGRAM)}-gram with "
        f"{about.get('dataset', 'the training data')} ({', '.join(about.get('columns') or [])}).",
        "",
        "| task | metric | all | n | clean | n clean | contaminated | n contaminated |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def pct(v):
        return "" if v is None else f"{100 * v:.1f}"

    for task, r in results["tasks"].items():
        c = r.get("clean")
        if not c:
            continue
        n_all = r.get("n") if r.get("n") is not None else c["n"] + c["contaminated"]
        cells = [task, r["metric"], pct(r.get("value")), str(n_all), pct(c["value"]), str(c["n"])]
        cells += [pct(c["contaminated_value"]), str(c["contaminated"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
