"""The LaMini-LM paper's facts that code needs, in one place: the 15 zero-shot tasks (metric, size, the data
lm-eval scores, which decontamination checks too), the topic rule for Wikipedia categories, and the published
numbers: the per-task table of ten models (base models beside their LaMini students), the averages of every
model and the human A-D counts.

Task names are those of the current lm-evaluation-harness (0.4.x); the dataset ids are the ones its task YAMLs
load, used for ``model-index`` entries when a results file does not carry them and for decontamination.

Example:
    >>> from lamini_lm.paper import PAPER_TASKS, is_paper_topic, paper_metric
    >>> len(PAPER_TASKS), paper_metric("hellaswag")
    (15, 'acc_norm')
    >>> is_paper_topic("Infantry", n_subcategories=11, n_pages=51), is_paper_topic("A b c", 100, 1000)
    (True, False)
    >>> PAPER_SCORES["GPT-2-XL"]["sst2"], paper_average("GPT-2-XL"), paper_average("GPT-2-XL", ["sst2", "rte"])
    (49.1, 53.0, 50.7)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "HUMAN_EVAL_SIZE",
    "PAPER_AVERAGES",
    "PAPER_MODEL_IDS",
    "PAPER_RUBRIC",
    "PAPER_SCORES",
    "PAPER_TASKS",
    "TOPIC_RULE",
    "PaperTask",
    "TopicRule",
    "is_paper_topic",
    "paper_average",
    "paper_metric",
    "paper_task",
    "reference_models",
]


@dataclasses.dataclass(frozen=True)
class PaperTask:
    """One of the paper's 15 benchmarks: display name, lm-eval task, size, metric and the dataset it reads."""

    name: str
    task: str
    n: int
    metric: str
    dataset: str
    dataset_config: str | None
    split: str
    # the splits decontamination checks: the scored one, plus validation when the task scores test
    extra_splits: tuple[str, ...] = ()

    @property
    def decontamination_splits(self) -> tuple[str, ...]:
        return (self.split, *self.extra_splits)


# The paper's table, in its order. Dataset/config/split as in lm-eval 0.4's YAMLs (test split when the
# task has one, else validation), so model cards point at what was actually scored.
PAPER_TASKS: tuple[PaperTask, ...] = (
    PaperTask("OpenBookQA", "openbookqa", 500, "acc_norm", "allenai/openbookqa", "main", "test", ("validation",)),
    PaperTask("SciQ", "sciq", 1000, "acc_norm", "allenai/sciq", None, "test", ("validation",)),
    PaperTask("RACE", "race", 1045, "acc", "EleutherAI/race", "high", "test"),
    PaperTask(
        "ARC-Challenge", "arc_challenge", 1172, "acc_norm", "allenai/ai2_arc", "ARC-Challenge", "test", ("validation",)
    ),
    PaperTask("PIQA", "piqa", 1838, "acc_norm", "baber/piqa", None, "validation"),
    PaperTask("ReCoRD", "record", 10000, "f1", "aps/super_glue", "record", "validation"),
    PaperTask("SST-2", "sst2", 872, "acc", "nyu-mll/glue", "sst2", "validation"),
    PaperTask("MRPC", "mrpc", 408, "acc", "nyu-mll/glue", "mrpc", "validation"),
    PaperTask("RTE", "rte", 277, "acc", "nyu-mll/glue", "rte", "validation"),
    PaperTask("MultiNLI", "mnli", 9815, "acc", "nyu-mll/glue", "mnli", "validation_matched"),
    PaperTask("MultiNLI mismatched", "mnli_mismatch", 9832, "acc", "nyu-mll/glue", "mnli", "validation_mismatched"),
    PaperTask("WSC", "wsc273", 273, "acc", "lighteval/winograd_wsc", "wsc273", "test"),
    PaperTask("WinoGrande", "winogrande", 1267, "acc", "allenai/winogrande", "winogrande_xl", "validation"),
    PaperTask("WiC", "wic", 638, "acc", "aps/super_glue", "wic", "validation"),
    PaperTask("HellaSwag", "hellaswag", 10042, "acc_norm", "Rowan/hellaswag", None, "validation"),
)

_BY_TASK = {t.task: t for t in PAPER_TASKS}

# The paper's per-task zero-shot results table, in percent: ten models, base models beside their LaMini students.
# Each column's mean of the 15 tasks reproduces the table's printed average (within 0.1).
_TABLE_MODELS = (
    "T5-738M",
    "LaMini-T5-738M",
    "Flan-T5-783M",
    "LaMini-Flan-T5-783M",
    "Cerebras-GPT-1.3B",
    "LaMini-Cerebras-1.3B",
    "GPT-2-XL",  # the table's "GPT-2-XL (1.5B)"
    "LaMini-GPT-1.5B",
    "LLaMA-7B",
    "Alpaca-7B",
)
_TABLE_ROWS = {
    "openbookqa": (32.8, 36.0, 31.2, 34.0, 29.0, 34.0, 32.0, 39.8, 42.4, 43.2),
    "sciq": (82.4, 84.5, 93.8, 86.7, 73.0, 79.4, 76.1, 80.4, 66.3, 69.6),
    "race": (31.5, 32.6, 40.9, 32.8, 30.3, 32.9, 33.1, 39.1, 39.9, 42.2),
    "arc_challenge": (25.4, 29.0, 30.7, 31.8, 25.3, 30.3, 28.5, 35.8, 41.4, 41.8),
    "piqa": (55.9, 67.2, 72.2, 70.6, 66.8, 66.9, 70.5, 71.3, 77.5, 76.0),
    "record": (73.1, 68.7, 76.7, 70.4, 75.0, 66.3, 84.4, 78.5, 91.4, 87.4),
    "sst2": (50.2, 90.3, 94.0, 93.1, 51.3, 90.3, 49.1, 93.5, 53.0, 85.8),
    "mrpc": (34.3, 71.1, 82.6, 77.9, 68.4, 71.3, 63.2, 76.0, 68.4, 74.3),
    "rte": (79.8, 57.0, 87.4, 65.0, 53.1, 65.7, 52.3, 67.9, 53.4, 67.1),
    "mnli": (61.3, 54.7, 72.4, 61.4, 35.2, 47.4, 36.5, 67.5, 34.4, 38.8),
    "mnli_mismatch": (63.1, 55.8, 72.0, 61.0, 35.4, 49.2, 37.0, 69.3, 35.6, 39.6),
    "wsc273": (60.4, 59.0, 66.7, 64.1, 62.3, 57.1, 73.3, 69.6, 80.6, 77.3),
    "winogrande": (55.2, 54.9, 59.9, 56.0, 51.9, 51.8, 58.3, 56.0, 67.0, 65.7),
    "wic": (49.4, 50.5, 64.7, 63.8, 50.2, 50.2, 49.8, 52.4, 50.0, 57.5),
    "hellaswag": (38.9, 40.6, 48.7, 43.7, 38.4, 38.7, 50.9, 48.3, 73.0, 68.7),
}
PAPER_SCORES: dict[str, dict[str, float]] = {
    model: {task: row[i] for task, row in _TABLE_ROWS.items()} for i, model in enumerate(_TABLE_MODELS)
}

# Average over the 15 tasks, in percent, as the paper prints them: the LaMini herd's read off its plot (about
# +-0.3; they agree with the table where both exist), the base models' from the table's Average row.
PAPER_AVERAGES: dict[str, float] = {
    "LaMini-Flan-T5-77M": 51.3,
    "LaMini-Flan-T5-248M": 58.9,
    "LaMini-Flan-T5-783M": 60.8,
    "LaMini-T5-61M": 47.6,
    "LaMini-T5-223M": 55.8,
    "LaMini-T5-738M": 56.8,
    "LaMini-GPT-124M": 50.6,
    "LaMini-GPT-774M": 60.8,
    "LaMini-GPT-1.5B": 63.0,
    "LaMini-Cerebras-111M": 45.5,
    "LaMini-Cerebras-256M": 48.9,
    "LaMini-Cerebras-590M": 52.6,
    "LaMini-Cerebras-1.3B": 55.4,
    "LaMini-Neo-125M": 46.2,
    "LaMini-Neo-1.3B": 59.0,
    "Alpaca-7B": 62.3,
    "LLaMA-7B": 58.3,
    "T5-738M": 52.9,
    "Flan-T5-783M": 66.3,
    "Cerebras-GPT-1.3B": 49.7,
    "GPT-2-XL": 53.0,
}

# The Hub checkpoint of each paper model, where one exists: what to evaluate to reproduce its column (the base
# models with ``--no-wrapper``). Alpaca-7B was released as a weight diff only, so it has none.
PAPER_MODEL_IDS: dict[str, str] = {
    **{name: f"MBZUAI/{name}" for name in PAPER_AVERAGES if name.startswith("LaMini-")},
    "T5-738M": "t5-large",
    "Flan-T5-783M": "google/flan-t5-large",
    "Cerebras-GPT-1.3B": "cerebras/Cerebras-GPT-1.3B",
    "GPT-2-XL": "gpt2-xl",
    "LLaMA-7B": "huggyllama/llama-7b",
}

# The human evaluation's size: user-oriented instructions, each answer graded once (every rubric row sums to it).
HUMAN_EVAL_SIZE = 114

# Human evaluation on 114 user-oriented instructions: counts of grades A/B/C/D (the paper's figure).
PAPER_RUBRIC: dict[str, dict[str, int]] = {
    "LaMini-Flan-T5-783M": {"A": 45, "B": 25, "C": 30, "D": 14},
    "LaMini-T5-738M": {"A": 44, "B": 28, "C": 30, "D": 12},
    "Alpaca-7B": {"A": 39, "B": 34, "C": 29, "D": 12},
    "LaMini-Flan-T5-248M": {"A": 34, "B": 29, "C": 35, "D": 16},
    "LaMini-GPT-1.5B": {"A": 29, "B": 28, "C": 34, "D": 23},
    "LLaMA-7B": {"A": 3, "B": 10, "C": 19, "D": 82},
    "GPT-2-XL": {"A": 0, "B": 0, "C": 19, "D": 95},
}


def paper_task(task: str) -> PaperTask | None:
    """The paper's entry for an lm-eval task name, or ``None`` for a task the paper did not use."""
    return _BY_TASK.get(task)


def paper_average(model: str, tasks: Sequence[str] | None = None) -> float | None:
    """The paper's average of ``model`` over ``tasks``: the printed 15-task average when ``tasks`` is ``None`` or
    all 15; otherwise the mean of the paper's per-task numbers over those tasks (rounded to 0.1), ``None`` when
    the paper has no per-task numbers for the model or a task is not one of the paper's."""
    every = {t.task for t in PAPER_TASKS}
    if tasks is None or set(tasks) == every:
        return PAPER_AVERAGES.get(model)
    scores = PAPER_SCORES.get(model)
    if not scores or not tasks or any(t not in scores for t in tasks):
        return None
    return round(sum(scores[t] for t in tasks) / len(tasks), 1)


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _aliases(model: str) -> set[str]:
    hub_id = PAPER_MODEL_IDS.get(model)
    return {_norm(model)} | ({_norm(hub_id.rsplit("/", 1)[-1])} if hub_id else set())


def reference_models(
    names: Sequence[str], reference: Sequence[str] | None = None, table: Mapping[str, Any] = PAPER_AVERAGES
) -> list[str]:
    """Which of the paper's models (keys of ``table``) to show beside ``names``: the ``reference`` names
    (``"all"`` for every one), or by default those that a name matches, by paper name or Hub id
    (``runs/lamini-gpt-124m`` -> ``LaMini-GPT-124M``, ``gpt2-xl`` -> ``GPT-2-XL``). A name matching several takes
    the longest (``lamini-flan-t5-783m`` is LaMini-Flan-T5-783M, not Flan-T5-783M).

    Raises ``ValueError`` naming unknown ``reference`` names and the known ones."""
    if reference and any(r.lower() == "all" for r in reference):
        return list(table)
    if reference:
        unknown = [r for r in reference if r not in table]
        if unknown:
            raise ValueError(f"unknown paper model(s) {unknown}; known: {sorted(table)}")
        return list(dict.fromkeys(reference))
    found = set()
    for name in names:
        key = _norm(Path(str(name).rstrip("/")).name) or _norm(str(name))
        hits = {m: max(len(a) for a in _aliases(m) if a in key) for m in table if any(a in key for a in _aliases(m))}
        if hits:
            found.add(max(hits, key=hits.get))
    return [m for m in table if m in found]


def paper_metric(task: str) -> str | None:
    """The metric the paper reports for ``task`` (``acc``, ``acc_norm`` or ``f1``), ``None`` if not a paper task."""
    entry = _BY_TASK.get(task)
    return entry.metric if entry else None


@dataclasses.dataclass(frozen=True)
class TopicRule:
    """The paper's filter of Wikipedia categories into topics: a title of fewer than ``words_below`` words, more
    than ``subcategories_above`` subcategories and more than ``pages_above`` pages (all strict, as the paper says)."""

    words_below: int = 3
    subcategories_above: int = 10
    pages_above: int = 50

    def keeps(self, name: str, n_subcategories: int, n_pages: int) -> bool:
        words = len(str(name).replace("_", " ").split())
        return (
            0 < words < self.words_below and n_subcategories > self.subcategories_above and n_pages > self.pages_above
        )


TOPIC_RULE = TopicRule()


def is_paper_topic(name: str, n_subcategories: int, n_pages: int, rule: TopicRule = TOPIC_RULE) -> bool:
    """Whether a Wikipedia category passes the paper's topic filter (``rule`` changes the thresholds)."""
    return rule.keeps(name, n_subcategories, n_pages)
