"""Alpaca (Taori et al., 2023): 52K instructions written by text-davinci-003. LaMini-LM keeps them as they are
and has the teacher answer them again (SPEC 2, ``instruction_source="alpaca"``).

Example:
    >>> from lamini_lm.builders.alpaca import Alpaca
    >>> builder = Alpaca()  # reads tatsu-lab/alpaca from the Hub
    >>> builder.download_and_prepare()  # doctest: +SKIP
    >>> ds = builder.as_dataset(split="train")  # doctest: +SKIP
    >>> Alpaca(data_files="alpaca_data.json")  # the original JSON array, or .jsonl/.parquet  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import datasets

from ._base import SourceBuilder
from ._io import field_value, hub_files, iter_records

__all__ = ["ALPACA_REPO", "Alpaca"]

ALPACA_REPO = "tatsu-lab/alpaca"


class Alpaca(SourceBuilder):
    """One config, ``default``: ``instruction``, ``input`` (empty for most rows), ``output``."""

    VERSION = datasets.Version("1.0.0")
    CARD = "alpaca"
    HOMEPAGE = "https://github.com/tatsu-lab/stanford_alpaca"
    LICENSE = "cc-by-nc-4.0"
    BUILDER_CONFIGS = [datasets.BuilderConfig(name="default", version=VERSION)]

    def _features(self) -> datasets.Features:
        return datasets.Features({k: datasets.Value("string") for k in ("instruction", "input", "output")})

    def _default_files(self) -> list[str]:
        return hub_files(ALPACA_REPO, "data/*.parquet")

    def _examples(self, path: str) -> Iterator[dict[str, Any]]:
        for line, row in iter_records(path):
            yield {
                "instruction": field_value(row, "instruction", path, line),
                "input": field_value(row, "input", path, line, optional=True) or "",
                "output": field_value(row, "output", path, line),
            }
