"""Alpaca (Taori et al., 2023): 52K instructions written by text-davinci-003. LaMini-LM keeps them as they are
and has the teacher answer them again (SPEC 2, ``instruction_source="alpaca"``).

Two configs: ``default`` is Alpaca's own three columns; ``instructions`` is its projection into the LaMini schema,
what ``lamini-lm generate responses`` is given: ``instruction`` (with the row's ``input`` joined by
:func:`lamini_lm.records.join_input`, a blank line between them) and ``instruction_source`` = ``alpaca``. Alpaca's
``output`` is not carried over: the teacher answers again.

Example:
    >>> from lamini_lm.builders.alpaca import Alpaca
    >>> builder = Alpaca()  # reads tatsu-lab/alpaca from the Hub
    >>> builder.download_and_prepare()  # doctest: +SKIP
    >>> ds = builder.as_dataset(split="train")  # doctest: +SKIP
    >>> Alpaca(data_files="alpaca_data.json")  # the original JSON array, or .jsonl/.parquet  # doctest: +SKIP
    >>> Alpaca(config_name="instructions", data_files="alpaca_data.json")  # to answer  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import datasets

from lamini_lm.records import InstructionSource, join_input

from ._base import SourceBuilder
from ._io import field_value, hub_files, iter_records

__all__ = ["ALPACA_REPO", "Alpaca"]

ALPACA_REPO = "tatsu-lab/alpaca"
_COLUMNS = ("instruction", "input", "output")


class Alpaca(SourceBuilder):
    """``default``: ``instruction``, ``input`` (empty for most rows), ``output``; ``instructions``: ``instruction``
    (input joined) and ``instruction_source``."""

    VERSION = datasets.Version("1.0.0")
    CARD = "alpaca"
    HOMEPAGE = "https://github.com/tatsu-lab/stanford_alpaca"
    LICENSE = "cc-by-nc-4.0"
    BUILDER_CONFIGS = [
        datasets.BuilderConfig(name="default", version=VERSION, description="Alpaca's columns"),
        datasets.BuilderConfig(
            name="instructions", version=VERSION, description="LaMini schema: instruction (input joined), source"
        ),
    ]
    DEFAULT_CONFIG_NAME = "default"

    def _features(self) -> datasets.Features:
        names = ("instruction", "instruction_source") if self.config.name == "instructions" else _COLUMNS
        return datasets.Features({k: datasets.Value("string") for k in names})

    def _default_files(self) -> list[str]:
        return hub_files(ALPACA_REPO, "data/*.parquet")

    def _examples(self, path: str) -> Iterator[dict[str, Any]]:
        for line, row in iter_records(path):
            example = {
                "instruction": field_value(row, "instruction", path, line),
                "input": field_value(row, "input", path, line, optional=True) or "",
                "output": field_value(row, "output", path, line),
            }
            if self.config.name == "instructions":
                example = {
                    "instruction": join_input(example["instruction"], example["input"]),
                    "instruction_source": InstructionSource.ALPACA.value,
                }
            yield example
