"""Decontamination: flag training rows sharing a word n-gram (13 by default) with the 15 evaluation tasks.

The evaluation sets are the splits lm-evaluation-harness scores for the paper's 15 tasks, loaded through
``datasets`` from their Hub ids (:data:`EVAL_SETS`), or from local files/datasets you pass
(``eval_sets={"sciq": "sciq_test.jsonl"}``). Every string in an evaluation row (questions, passages, choices,
endings) is tokenised like ROUGE (lower-case alphanumeric words) and its n-grams are hashed; a training row is
flagged for a task when one of its columns (``instruction`` and ``response`` by default) contains one of them.
Flagged rows are removed or tagged (a ``contaminated`` column listing the tasks), and the :class:`StepReport`
counts flags per task and column (``details["tasks"]``).

Example:
    >>> import datasets
    >>> from lamini_lm.quality import decontaminate
    >>> bench = datasets.Dataset.from_dict({"question": ["What gas do plants absorb from the air to make food"]})
    >>> train = datasets.Dataset.from_dict({"instruction": [
    ...     "Answer: what gas do plants absorb from the air to make food?", "Add 2 and 3."]})
    >>> kept, report = decontaminate(train, eval_sets={"sciq": bench}, ngram=8, columns=["instruction"])
    >>> kept["instruction"][:], report.details["tasks"]["sciq"]["flagged"], report.removed
    (['Add 2 and 3.'], 1, {'contaminated': 1})
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lamini_lm.artifacts import StepReport
from lamini_lm.config import check_choice, check_range
from lamini_lm.errors import DataError, UsageError
from lamini_lm.io import column, iter_records, load_table
from lamini_lm.paper import PAPER_TASKS
from lamini_lm.quality.text import TokenizedTexts, ngram_hashes, tokenize_texts

if TYPE_CHECKING:
    import datasets

__all__ = [
    "EVAL_SETS",
    "DecontaminateConfig",
    "DecontaminationTally",
    "EvalSet",
    "NgramIndex",
    "build_index",
    "decontaminate",
    "load_eval_set",
    "scan",
    "task_names",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalSet:
    """Where lm-evaluation-harness reads a task's documents from (``dataset_path``, ``dataset_name``, splits)."""

    path: str
    name: str | None
    splits: tuple[str, ...]


# The paper's 15 evaluation tasks (lamini_lm.paper, the one list), as lm-eval 0.4 names and loads them; splits: the
# evaluated one, plus validation where the task scores test.
EVAL_SETS: dict[str, EvalSet] = {
    t.task: EvalSet(t.dataset, t.dataset_config, t.decontamination_splits) for t in PAPER_TASKS
}


@dataclass
class DecontaminateConfig:
    """Settings of ``lamini-lm decontaminate`` (and :func:`lamini_lm.quality.stages.run_decontaminate`)."""

    tasks: list[str] = field(
        default_factory=list,
        metadata={"help": "evaluation tasks to check against (default: those of --eval_files, else all 15)"},
    )
    eval_files: list[str] = field(
        default_factory=list,
        metadata={"help": "TASK=PATH pairs: read these tasks' evaluation rows from local files instead of the Hub"},
    )
    ngram: int = field(default=13, metadata={"help": "n-gram length, in words"})
    columns: list[str] = field(
        default_factory=lambda: ["instruction", "response"], metadata={"help": "text columns checked"}
    )
    action: str = field(
        default="remove", metadata={"help": "remove flagged rows, or tag them in a `contaminated` column"}
    )
    examples: int = field(default=5, metadata={"help": "flagged rows quoted per task in the report"})
    batch_rows: int = field(default=100_000, metadata={"help": "rows read, checked and written per Arrow batch"})
    num_proc: int = field(
        default=1, metadata={"help": "processes checking batches (local engine; 2 was slower on a 2-core machine)"}
    )
    engine: str = field(
        default="local", metadata={"help": "'local' (this machine) or 'ray' (Ray Data; RAY_ADDRESS or a local Ray)"}
    )

    def __post_init__(self):
        check_range("ngram", self.ngram, 1)
        check_range("batch_rows", self.batch_rows, 1)
        check_range("num_proc", self.num_proc, 1)
        check_choice("engine", self.engine, ("local", "ray"))
        check_range("examples", self.examples, 0)
        check_choice("action", self.action, ("remove", "tag"))
        if not self.columns:
            raise UsageError("--columns: give at least one text column to check")
        self._files: dict[str, str] = {}
        for pair in self.eval_files:
            task, sep, path = str(pair).partition("=")
            if not sep or not task.strip() or not path.strip():
                raise UsageError(f"--eval_files: expected TASK=PATH, got {pair!r}")
            if not os.path.exists(path.strip()):
                raise FileNotFoundError(f"--eval_files {pair}: no such file or folder")
            self._files[task.strip()] = path.strip()
        unknown = [t for t in self.tasks if t not in EVAL_SETS and t not in self._files]
        if unknown:
            raise UsageError(
                f"--tasks: unknown task {unknown[0]!r} (known: {', '.join(EVAL_SETS)}); "
                "give its evaluation rows with --eval_files TASK=PATH"
            )

    def sources(self) -> dict[str, str | None]:
        """task -> local file, or None to load it from the Hub."""
        tasks = self.tasks or list(self._files) or list(EVAL_SETS)
        return {t: self._files.get(t) for t in tasks}


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
    if isinstance(source, (str, os.PathLike)) and str(source).endswith((".jsonl", ".json")) and os.path.isfile(source):
        # the rows as parsed: the same strings as through a Dataset, without importing and formatting one
        return [s for _, row in iter_records(os.fspath(source)) for s in _strings(row)]
    import datasets

    if source is None:
        if task not in EVAL_SETS:
            raise KeyError(f"unknown eval task {task!r}; known: {', '.join(EVAL_SETS)}")
        spec = EVAL_SETS[task]
        parts = _load_from_hub(task, spec)
        ds = datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    elif isinstance(source, datasets.Dataset):
        ds = source
    else:
        ds = load_table(os.fspath(source))
    return [s for row in ds for s in _strings(row)]


def _load_from_hub(task: str, spec: EvalSet) -> list:
    """The task's evaluation splits from the Hub; unreachable (or offline and not cached) is one line naming the
    local alternative, in seconds rather than after the Hub client's retries."""
    import datasets

    from lamini_lm.errors import OfflineError
    from lamini_lm.sources import check_source, is_offline

    hint = (
        f"pass local copies with --eval_files {task}=FILE.jsonl (one per task), or --tasks with the tasks you have "
        "files for"
    )
    try:
        if not is_offline():
            check_source(spec.path, "dataset", "eval set")  # a few seconds when the Hub is unreachable
        return [datasets.load_dataset(spec.path, spec.name, split=s) for s in spec.splits]
    except OfflineError as e:
        raise OfflineError(f"the {task} evaluation set ({spec.path}) cannot be loaded: {e}; {hint}") from None
    except (ConnectionError, OSError) as e:
        why = "offline (HF_HUB_OFFLINE) and not in the cache" if is_offline() else type(e).__name__
        raise OfflineError(f"the {task} evaluation set ({spec.path}) cannot be loaded: {why}; {hint}") from None


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


class DecontaminationTally:
    """What a decontamination pass counts, batch by batch: flags per task and column, quoted rows, removed sources.

    :meth:`add` takes one batch's texts and task masks (rows numbered from the batch's ``offset``), :meth:`report`
    gives the :class:`StepReport`; :func:`decontaminate` and the batched stage share it.
    """

    def __init__(self, index: NgramIndex, columns: Sequence[str], action: str, examples: int):
        self.index, self.columns, self.action, self.examples = index, list(columns), action, examples
        self.rows_in = self.flagged = 0
        self.by_task = np.zeros(len(index.tasks), dtype=np.int64)
        self.by_column = {c: np.zeros(len(index.tasks), dtype=np.int64) for c in self.columns}
        self.rows: dict[str, list[int]] = {t: [] for t in index.tasks}
        self.quoted: dict[str, list[str]] = {}
        self.by_source: Counter = Counter()

    def add(
        self,
        first_col: Sequence[str | None],
        total: np.ndarray,
        per_column: Mapping[str, np.ndarray],
        sources: Sequence[str] | None,
        offset: int,
    ) -> None:
        self.rows_in += len(total)
        flagged = np.flatnonzero(total)
        self.flagged += len(flagged)
        if not len(flagged):
            return
        for bit, task in enumerate(self.index.tasks):
            b = np.uint64(1 << bit)
            rows = np.flatnonzero(total & b)
            if not len(rows):
                continue
            self.by_task[bit] += len(rows)
            for c, m in per_column.items():
                self.by_column[c][bit] += int(np.count_nonzero(m & b))
            room = self.examples - len(self.rows[task])
            if room > 0:
                self.rows[task] += (rows[:room] + offset).tolist()
                shown = rows[:room].tolist()
                if hasattr(first_col, "take"):  # a pyarrow array
                    quoted = first_col.take(shown).to_pylist()
                else:
                    quoted = [first_col[r] for r in shown]
                self.quoted.setdefault(task, []).extend(quoted)
        if self.action == "remove" and sources is not None:
            self.by_source.update(sources[i] for i in flagged.tolist())

    def report(self, seconds: float, seconds_by_phase: dict[str, float]) -> StepReport:
        task_counts: dict[str, Any] = {}
        for bit, task in enumerate(self.index.tasks):
            task_counts[task] = {
                "eval_ngrams": self.index.sizes[task],
                "flagged": int(self.by_task[bit]),
                "by_column": {c: int(v[bit]) for c, v in self.by_column.items()},
                "rows": self.rows[task],
            }
            if self.by_task[bit]:
                logger.info("decontaminate %s: %d rows share a %d-gram", task, self.by_task[bit], self.index.ngram)
        remove = self.action == "remove"
        return StepReport(
            step="decontamination",
            rows_in=self.rows_in,
            rows_out=self.rows_in - self.flagged if remove else self.rows_in,
            removed={"contaminated": self.flagged} if remove else {},
            removed_by_source=dict(self.by_source),
            examples={t: q for t, q in self.quoted.items() if q},
            seconds=round(seconds, 3),
            config={
                "tasks": list(self.index.tasks),
                "ngram": self.index.ngram,
                "columns": self.columns,
                "action": self.action,
            },  # fmt: skip
            details={
                "ngram": self.index.ngram,
                "columns": self.columns,
                "action": self.action,
                "flagged": self.flagged,
                "tasks": task_counts,
                "seconds_by_phase": seconds_by_phase,
            },
        )


def scan(index: NgramIndex, texts_by_column: Mapping[str, Sequence[str | None]]) -> tuple[np.ndarray, dict]:
    """Task masks of a batch: ``(total, {column: mask})`` (uint64 bit masks, one per row)."""
    per_column = {c: index.row_masks(v) for c, v in texts_by_column.items()}  # lists or pyarrow string arrays
    total = np.zeros(len(next(iter(per_column.values()))), dtype=np.uint64)
    for m in per_column.values():
        total |= m
    return total, per_column


_SHARED: dict[str, Any] = {}  # the index, read by forked scan workers (set before they start: never pickled)


def scan_shared(texts_by_column: Mapping[str, Any]) -> tuple[np.ndarray, dict]:
    """:func:`scan` with the index in ``_SHARED["index"]``: the function :func:`forked_map` runs in its workers."""
    return scan(_SHARED["index"], texts_by_column)


def task_names(index: NgramIndex, total: np.ndarray) -> list[list[str]]:
    """The ``contaminated`` column: the task names of each row's mask."""
    return [[t for bit, t in enumerate(index.tasks) if int(m) >> bit & 1] for m in total.tolist()]


def build_index(
    eval_sets: Mapping[str, Any] | NgramIndex | None, tasks: Sequence[str] | None, ngram: int
) -> NgramIndex:
    """An :class:`NgramIndex` of ``eval_sets`` (task -> source, see :func:`load_eval_set`; None: ``tasks`` from
    the Hub), or ``eval_sets`` itself when it is one."""
    if isinstance(eval_sets, NgramIndex):
        return eval_sets
    sources = dict(eval_sets) if eval_sets is not None else {t: None for t in (tasks or EVAL_SETS)}
    return NgramIndex({t: load_eval_set(t, s) for t, s in sources.items()}, ngram=ngram)


def decontaminate(
    ds: datasets.Dataset,
    eval_sets: Mapping[str, Any] | NgramIndex | None = None,
    *,
    tasks: Sequence[str] | None = None,
    ngram: int = 13,
    columns: Sequence[str] = ("instruction", "response"),
    action: str = "remove",
    examples: int = 5,
) -> tuple[datasets.Dataset, StepReport]:
    """Flag rows of ``ds`` that share an ``ngram``-gram with an evaluation set; remove them or tag them.

    Args:
        eval_sets: task -> source (see :func:`load_eval_set`), or a prebuilt :class:`NgramIndex`; None loads
            ``tasks`` (default: all 15 of :data:`EVAL_SETS`) from the Hub.
        columns: text columns checked; each must be in ``ds`` (a missing one is an error naming it, so nothing is
            left unchecked silently).
        action: ``"remove"`` drops flagged rows; ``"tag"`` keeps them and adds a ``contaminated`` column (list of
            task names, empty for clean rows).

    Returns the rows and a :class:`StepReport` whose ``details`` hold ``ngram``, ``columns``, ``action``,
    ``flagged`` and ``tasks`` (per task: ``eval_ngrams``, ``flagged``, ``by_column``).
    """
    if action not in ("remove", "tag"):
        raise UsageError(f"--action: must be 'remove' or 'tag', got {action!r}")
    columns = list(columns)
    if not columns:
        raise UsageError("--columns: give at least one text column to check")
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise DataError(
            f"the dataset has no {missing[0]!r} column to check (its columns: {', '.join(ds.column_names)}); "
            f"pass --columns with the columns it has"
        )
    t0 = time.perf_counter()
    index = build_index(eval_sets, tasks, ngram)
    t1 = time.perf_counter()
    texts = {c: column(ds, c) for c in columns}
    total, per_column = scan(index, texts)
    tally = DecontaminationTally(index, columns, action, examples)
    sources = column(ds, "instruction_source") if "instruction_source" in ds.column_names else None
    tally.add(texts[columns[0]], total, per_column, sources, 0)
    del texts
    if action == "tag":
        out = ds.add_column("contaminated", task_names(index, total))
    else:
        keep = np.flatnonzero(total == 0)
        out = ds if len(keep) == len(ds) else ds.select(keep)
    phases = {"index": round(t1 - t0, 3), "scan": round(time.perf_counter() - t1, 3)}
    return out, tally.report(time.perf_counter() - t0, phases)
