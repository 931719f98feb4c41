"""Quality: dedup, filters, decontamination against the eval sets, statistics and plots.

Each step takes a ``datasets.Dataset`` and returns ``(dataset, StepReport)``; the stages
(``lamini-lm dedup | filter | decontaminate | stats``, :mod:`lamini_lm.quality.stages`) run the same functions on
files and write artifact folders whose manifest holds every step's report. The release folder, the dataset card and
the push live in :mod:`lamini_lm.publishing.dataset`.

Example:
    >>> import datasets
    >>> from lamini_lm.quality import dedup, filter_rows
    >>> ds = datasets.Dataset.from_dict({"instruction": ["Name three colours.", "name three colours"],
    ...                                  "response": ["Red, blue, green.", "Red, blue, green."]})
    >>> ds, report = dedup(ds)
    >>> ds, report = filter_rows(ds)
    >>> len(ds), report.step
    (1, 'filters')
"""

from lamini_lm.quality.decontaminate import EVAL_SETS, DecontaminateConfig, NgramIndex, decontaminate, load_eval_set
from lamini_lm.quality.dedup import DedupConfig, dedup, dedup_batches, dedup_texts
from lamini_lm.quality.filters import FilterConfig, filter_rows
from lamini_lm.quality.stages import StageIO, StatsConfig, run_decontaminate, run_dedup, run_filter, run_stats
from lamini_lm.quality.stats import compute_stats

__all__ = [
    "EVAL_SETS",
    "DecontaminateConfig",
    "DedupConfig",
    "FilterConfig",
    "NgramIndex",
    "StageIO",
    "StatsConfig",
    "compute_stats",
    "decontaminate",
    "dedup",
    "dedup_batches",
    "dedup_texts",
    "filter_rows",
    "load_eval_set",
    "run_decontaminate",
    "run_dedup",
    "run_filter",
    "run_stats",
]
