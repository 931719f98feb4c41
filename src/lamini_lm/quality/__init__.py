"""Quality: dedup, filters, decontamination against the eval sets, statistics and plots, the dataset card.

Each step takes a ``datasets.Dataset`` and returns ``(dataset, report)``; reports are JSON-ready dicts. The CLI
stages (``lamini-lm dedup | filter | decontaminate | stats | dataset-card | push-dataset``) call the same functions.

Example:
    >>> import datasets
    >>> from lamini_lm.quality import dedup, filter_rows
    >>> ds = datasets.Dataset.from_dict({"instruction": ["Name three colours.", "name three colours"],
    ...                                  "response": ["Red, blue, green.", "Red, blue, green."]})
    >>> ds, report = dedup(ds)
    >>> ds, report = filter_rows(ds)
    >>> len(ds)
    1
"""

from lamini_lm.quality.card import build_release, dataset_card, push_dataset
from lamini_lm.quality.decontaminate import EVAL_SETS, NgramIndex, decontaminate, load_eval_set
from lamini_lm.quality.dedup import DedupConfig, brute_force_rouge_keep, dedup, dedup_texts
from lamini_lm.quality.filters import FilterConfig, filter_rows
from lamini_lm.quality.stats import compute_stats

__all__ = [
    "EVAL_SETS",
    "DedupConfig",
    "FilterConfig",
    "NgramIndex",
    "brute_force_rouge_keep",
    "build_release",
    "compute_stats",
    "dataset_card",
    "decontaminate",
    "dedup",
    "dedup_texts",
    "filter_rows",
    "load_eval_set",
    "push_dataset",
]
