"""FLAN v2, the Flan Collection (Longpre et al., 2023): prompted NLP tasks from the Flan, T0, NIv2, CoT and
dialog submixtures, one subset per task.

Configs: ``sample`` (at most 1,000 rows per task; LaMini-LM's ``original_flan`` pool and the seed pool for
``generated_flan``) and ``full``. Override the sampling with ``per_subset=``, ``subsets=``, ``seed=``; choose the
Hub files with ``hub_pattern=`` (default: zero-shot, no options).

Example:
    >>> from lamini_lm.builders.flan_v2 import FlanV2
    >>> builder = FlanV2(config_name="sample", per_subset=100)  # reads Open-Orca/FLAN from the Hub
    >>> ds = builder.as_streaming_dataset(split="train")  # doctest: +SKIP
    >>> FlanV2(data_files=["flan.jsonl"])  # local: inputs, targets and a task name column  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets

from ._io import hub_files
from ._prompted import PromptedBuilder, PromptedConfig

__all__ = ["FLAN_REPO", "FlanV2", "FlanV2Config"]

# The Flan Collection as parquet, one folder per submixture and template type, with a _task_name column.
FLAN_REPO = "Open-Orca/FLAN"


@dataclass
class FlanV2Config(PromptedConfig):
    """Args:
    hub_pattern: the files of ``Open-Orca/FLAN`` to read when no local files are given.
    """

    hub_pattern: str = "*_zsnoopt_data/*.parquet"


class FlanV2(PromptedBuilder):
    VERSION = datasets.Version("1.0.0")
    CARD = "flan_v2"
    HOMEPAGE = "https://github.com/google-research/FLAN/tree/main/flan/v2"
    LICENSE = "apache-2.0"
    BUILDER_CONFIG_CLASS = FlanV2Config
    BUILDER_CONFIGS = [
        FlanV2Config(name="sample", version=VERSION, per_subset=1000, description="<= 1,000 rows per task"),
        FlanV2Config(name="full", version=VERSION, description="every row"),
    ]
    INPUT_FIELDS = ("inputs",)
    TARGET_FIELDS = ("targets",)
    SUBSET_FIELDS = ("_task_name", "task_name", "task", "subset")

    def _default_files(self) -> list[str]:
        return hub_files(FLAN_REPO, self.config.hub_pattern)
