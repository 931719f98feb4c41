"""P3, the Public Pool of Prompts (Sanh et al., 2021): prompted NLP datasets, one subset per (dataset, prompt).

Configs: ``sample`` (at most 1,000 rows per subset; LaMini-LM's ``original_p3`` pool and the seed pool for
``generated_p3``) and ``full``. Override the sampling with ``per_subset=``, ``subsets=``, ``seed=``.

Example:
    >>> from lamini_lm.builders.p3 import P3
    >>> builder = P3(config_name="sample", per_subset=200)  # reads bigscience/P3 (parquet) from the Hub
    >>> ds = builder.as_streaming_dataset(split="train")  # doctest: +SKIP
    >>> # local files: <subset>/*.parquet or .jsonl with inputs_pretokenized, targets_pretokenized
    >>> P3(data_dir="my_p3/")  # doctest: +SKIP
"""

from __future__ import annotations

import datasets

from ._io import hub_files
from ._prompted import PromptedBuilder, PromptedConfig

__all__ = ["P3", "P3_REPO"]

P3_REPO = "bigscience/P3"


class P3(PromptedBuilder):
    VERSION = datasets.Version("1.0.0")
    CARD = "p3"
    HOMEPAGE = "https://huggingface.co/datasets/bigscience/P3"
    LICENSE = "apache-2.0"
    BUILDER_CONFIGS = [
        PromptedConfig(name="sample", version=VERSION, per_subset=1000, description="<= 1,000 rows per subset"),
        PromptedConfig(name="full", version=VERSION, description="every training row"),
    ]
    INPUT_FIELDS = ("inputs_pretokenized", "inputs")
    TARGET_FIELDS = ("targets_pretokenized", "targets")
    SUBSET_FIELDS = ("subset", "task_name", "config_name")

    def _default_files(self) -> list[str]:
        # The Hub copy is parquet, one folder per subset: <subset>/train-*.parquet.
        cfg = self.config
        if cfg.subsets:
            return [f for s in cfg.subsets for f in hub_files(P3_REPO, f"{s}/train-*.parquet")]
        return hub_files(P3_REPO, "*/train-*.parquet")
