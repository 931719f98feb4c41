"""The LaMini-LM paper's facts that code needs, in one place: the 15 zero-shot tasks (metric, size, the data
lm-eval scores, which decontamination checks too), the topic rule for Wikipedia categories, and the published
numbers (averages and the human A-D counts).

Task names are those of the current lm-evaluation-harness (0.4.x); the dataset ids are the ones its task YAMLs
load, used for ``model-index`` entries when a results file does not carry them and for decontamination.

Example:
    >>> from lamini_lm.paper import PAPER_TASKS, is_paper_topic, paper_metric
    >>> len(PAPER_TASKS), paper_metric("hellaswag")
    (15, 'acc_norm')
    >>> is_paper_topic("Infantry", n_subcategories=11, n_pages=51), is_paper_topic("A b c", 100, 1000)
    (True, False)
"""

from __future__ import annotations

import dataclasses

__all__ = [
    "PAPER_AVERAGES",
    "PAPER_RUBRIC",
    "PAPER_TASKS",
    "TOPIC_RULE",
    "PaperTask",
    "TopicRule",
    "is_paper_topic",
    "paper_metric",
    "paper_task",
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

# Average accuracy over the 15 tasks, in percent, read off the paper's plot (about +-0.3).
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
}

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
