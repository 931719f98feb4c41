"""Decontamination: flag training rows sharing a word n-gram (13 by default) with the 15 evaluation tasks.

The evaluation sets are the splits lm-evaluation-harness scores (SPEC 7), loaded through ``datasets`` from their
Hub ids (:data:`EVAL_SETS`), or from local files/datasets you pass (``eval_sets={"sciq": "sciq_test.jsonl"}``).
Every string in an evaluation row (questions, passages, choices, endings) is tokenised like ROUGE (lower-case
alphanumeric words) and its n-grams are hashed; a training row is flagged for a task when one of its columns
(``instruction`` and ``response`` by default) contains one of them. Flagged rows are removed or tagged (a
``contaminated`` column listing the tasks), and the report counts flags per task and column.

Example:
    >>> import datasets
    >>> from lamini_lm.quality import decontaminate
    >>> bench = datasets.Dataset.from_dict({"question": ["What gas do plants absorb from the air to make food"]})
    >>> train = datasets.Dataset.from_dict({"instruction": [
    ...     "Answer: what gas do plants absorb from the air to make food?", "Add 2 and 3."]})
    >>> kept, report = decontaminate(train, eval_sets={"sciq": bench}, ngram=8)
    >>> kept["instruction"][:], report["tasks"]["sciq"]["flagged"]
    (['Add 2 and 3.'], 1)
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lamini_lm.io import load_table
from lamini_lm.quality.io import column
from lamini_lm.quality.text import TokenizedTexts, ngram_hashes, tokenize_texts

if TYPE_CHECKING:
    import datasets

__all__ = ["EVAL_SETS", "EvalSet", "NgramIndex", "decontaminate", "load_eval_set"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalSet:
    """Where lm-evaluation-harness reads a task's documents from (``dataset_path``, ``dataset_name``, splits)."""

    path: str
    name: str | None
    splits: tuple[str, ...]


# SPEC 7's 15 tasks, as lm-eval 0.4 names and loads them; splits are the evaluated one plus validation if distinct.
EVAL_SETS: dict[str, EvalSet] = {
    "openbookqa": EvalSet("allenai/openbookqa", "main", ("test", "validation")),
    "sciq": EvalSet("allenai/sciq", None, ("test", "validation")),
    "race": EvalSet("EleutherAI/race", "high", ("test",)),
    "arc_challenge": EvalSet("allenai/ai2_arc", "ARC-Challenge", ("test", "validation")),
    "piqa": EvalSet("baber/piqa", None, ("validation",)),
    "record": EvalSet("aps/super_glue", "record", ("validation",)),
    "sst2": EvalSet("nyu-mll/glue", "sst2", ("validation",)),
    "mrpc": EvalSet("nyu-mll/glue", "mrpc", ("validation",)),
    "rte": EvalSet("nyu-mll/glue", "rte", ("validation",)),
    "mnli": EvalSet("nyu-mll/glue", "mnli", ("validation_matched",)),
    "mnli_mismatch": EvalSet("nyu-mll/glue", "mnli", ("validation_mismatched",)),
    "wsc273": EvalSet("lighteval/winograd_wsc", "wsc273", ("test",)),
    "winogrande": EvalSet("allenai/winogrande", "winogrande_xl", ("validation",)),
    "wic": EvalSet("aps/super_glue", "wic", ("validation",)),
    "hellaswag": EvalSet("Rowan/hellaswag", None, ("validation",)),
}


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def load_eval_set(task: str, source: Any = None) -> list[str]:
    """Every string of a task's evaluation rows.

    Args:
        source: None to load :data:`EVAL_SETS` ``[task]`` from the Hub through ``datasets.load_dataset``; a
            ``datasets.Dataset``; or a path to a ``.jsonl``/``.json``/``.parquet`` file or a ``save_to_disk`` folder.
    """
    import datasets

    if source is None:
        if task not in EVAL_SETS:
            raise KeyError(f"unknown eval task {task!r}; known: {', '.join(EVAL_SETS)}")
        spec = EVAL_SETS[task]
        parts = [datasets.load_dataset(spec.path, spec.name, split=s) for s in spec.splits]
        ds = datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    elif isinstance(source, datasets.Dataset):
        ds = source
    else:
        ds = load_table(os.fspath(source))
    return [s for row in ds for s in _strings(row)]


class NgramIndex:
    """Hashed n-grams of several tasks: one sorted array and, per entry, a bit mask of the tasks that contain it."""

    def __init__(self, texts_by_task: Mapping[str, Sequence[str]], ngram: int = 13):
        if len(texts_by_task) > 62:
            raise ValueError("NgramIndex holds at most 62 tasks")
        self.tasks = list(texts_by_task)
        self.ngram = ngram
        self.sizes: dict[str, int] = {}
        hashes, masks = [], []
        for bit, (task, texts) in enumerate(texts_by_task.items()):
            h = np.unique(ngram_hashes(tokenize_texts(texts), ngram)[0])
            self.sizes[task] = len(h)
            hashes.append(h)
            masks.append(np.full(len(h), 1 << bit, dtype=np.uint64))
        allh = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint64)
        allm = np.concatenate(masks) if masks else np.zeros(0, dtype=np.uint64)
        order = np.argsort(allh, kind="stable")
        allh, allm = allh[order], allm[order]
        self.hashes, first = np.unique(allh, return_index=True)
        self.masks = np.bitwise_or.reduceat(allm, first) if len(first) else allm
        # A 2^27-bit presence filter answers most misses with one gather instead of a binary search.
        self._bits = np.zeros(1 << 21, dtype=np.uint64)
        top = self.hashes >> np.uint64(37)
        np.bitwise_or.at(self._bits, (top >> np.uint64(6)).astype(np.int64), np.uint64(1) << (top & np.uint64(63)))

    def lookup(self, hashes: np.ndarray) -> np.ndarray:
        """Task bit mask of each hash (0 when no task contains it)."""
        out = np.zeros(len(hashes), dtype=np.uint64)
        if not len(self.hashes) or not len(hashes):
            return out
        top = hashes >> np.uint64(37)
        maybe = (self._bits[(top >> np.uint64(6)).astype(np.int64)] >> (top & np.uint64(63))) & np.uint64(1)
        cand = np.flatnonzero(maybe)
        pos = np.minimum(np.searchsorted(self.hashes, hashes[cand]), len(self.hashes) - 1)
        hit = self.hashes[pos] == hashes[cand]
        out[cand[hit]] = self.masks[pos[hit]]
        return out

    def row_masks(self, texts: Sequence[str] | TokenizedTexts) -> np.ndarray:
        """Task bit mask per text: the tasks sharing at least one n-gram with it (texts may come tokenised)."""
        tok = texts if isinstance(texts, TokenizedTexts) else tokenize_texts(texts)
        h, rows = ngram_hashes(tok, self.ngram)
        m = self.lookup(h)
        out = np.zeros(len(tok), dtype=np.uint64)
        hit = np.flatnonzero(m)
        np.bitwise_or.at(out, rows[hit], m[hit])
        return out


def decontaminate(
    ds: datasets.Dataset,
    eval_sets: Mapping[str, Any] | NgramIndex | None = None,
    *,
    tasks: Sequence[str] | None = None,
    ngram: int = 13,
    columns: Sequence[str] = ("instruction", "response"),
    action: str = "remove",
    examples: int = 5,
) -> tuple[datasets.Dataset, dict[str, Any]]:
    """Flag rows of ``ds`` that share an ``ngram``-gram with an evaluation set; remove them or tag them.

    Args:
        eval_sets: task -> source (see :func:`load_eval_set`), or a prebuilt :class:`NgramIndex`; None loads
            ``tasks`` (default: all 15 of :data:`EVAL_SETS`) from the Hub.
        columns: text columns checked (those missing from ``ds`` are skipped).
        action: ``"remove"`` drops flagged rows; ``"tag"`` keeps them and adds a ``contaminated`` column (list of
            task names, empty for clean rows).
    """
    if action not in ("remove", "tag"):
        raise ValueError(f"action must be 'remove' or 'tag', got {action!r}")
    t0 = time.perf_counter()
    if isinstance(eval_sets, NgramIndex):
        index = eval_sets
    else:
        sources = dict(eval_sets) if eval_sets is not None else {t: None for t in (tasks or EVAL_SETS)}
        index = NgramIndex({t: load_eval_set(t, s) for t, s in sources.items()}, ngram=ngram)
    t1 = time.perf_counter()
    used = [c for c in columns if c in ds.column_names]
    if not used:
        raise KeyError(f"decontaminate: none of the columns {list(columns)} is in the dataset ({ds.column_names})")
    total = np.zeros(len(ds), dtype=np.uint64)
    per_column: dict[str, np.ndarray] = {}
    first_col = column(ds, used[0])  # read once: scanned below and quoted in the report's examples
    for col in used:
        values = first_col if col == used[0] else column(ds, col)
        per_column[col] = index.row_masks([t or "" for t in values])
        total |= per_column[col]
    del values
    flagged = np.flatnonzero(total)
    report: dict[str, Any] = {
        "ngram": index.ngram,
        "columns": used,
        "action": action,
        "rows_in": len(ds),
        "flagged": len(flagged),
        "tasks": {},
        "seconds": {"index": round(t1 - t0, 3), "scan": round(time.perf_counter() - t1, 3)},
    }
    for bit, task in enumerate(index.tasks):
        b = np.uint64(1 << bit)
        rows = np.flatnonzero(total & b)
        report["tasks"][task] = {
            "eval_ngrams": index.sizes[task],
            "flagged": len(rows),
            "by_column": {c: int(np.count_nonzero(m & b)) for c, m in per_column.items()},
            "examples": [{"row": int(r), used[0]: first_col[r]} for r in rows[:examples].tolist()],
        }
        if len(rows):
            logger.info("decontaminate %s: %d rows share a %d-gram", task, len(rows), index.ngram)
    if action == "tag":
        names = [[t for bit, t in enumerate(index.tasks) if int(m) >> bit & 1] for m in total.tolist()]
        out = ds.add_column("contaminated", names)
    else:
        keep = np.flatnonzero(total == 0)
        out = ds if len(keep) == len(ds) else ds.select(keep)
    report["rows_out"] = len(out)
    return out, report
