"""Prompted NLP collections (P3, FLAN v2): rows of (subset, inputs, targets) with per-subset sampling.

LaMini-LM keeps a sample of each collection as instructions (``original_p3``, ``original_flan``) and samples
three seeds from the same subset for example-guided generation (SPEC 2), so the subset name travels with
every row and sampling is per subset.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import datasets
from datasets.builder import Key

from ._base import SourceBuilder
from ._io import DataFileError, SubsetSampler, field_value, iter_records

__all__ = ["PromptedBuilder", "PromptedConfig"]


@dataclass
class PromptedConfig(datasets.BuilderConfig):
    """Args:
    per_subset: keep at most this many rows of each subset (reservoir sampling, one pass); None keeps all.
    subsets: keep only these subsets (None: every subset).
    seed: sampling seed; the same seed and input give the same rows.
    """

    per_subset: int | None = None
    subsets: tuple[str, ...] | None = None
    seed: int = 42

    def __post_init__(self):
        super().__post_init__()
        self.validate()

    def validate(self) -> None:
        # also called by the builder: datasets sets overrides (P3(per_subset=...)) after __post_init__ has run
        if self.per_subset is not None and (not isinstance(self.per_subset, int) or self.per_subset < 1):
            raise ValueError(f"per_subset must be a positive integer or None, got {self.per_subset!r}")
        if isinstance(self.subsets, str):
            self.subsets = (self.subsets,)
        if self.subsets is not None:
            self.subsets = tuple(self.subsets)


class PromptedBuilder(SourceBuilder):
    """Base of :class:`~lamini_lm.builders.p3.P3` and :class:`~lamini_lm.builders.flan_v2.FlanV2`.

    A row's text comes from the first of ``INPUT_FIELDS``/``TARGET_FIELDS`` present, its subset from the first of
    ``SUBSET_FIELDS`` present, else from the name of the folder holding the file (P3's layout).
    """

    BUILDER_CONFIG_CLASS = PromptedConfig
    INPUT_FIELDS: tuple[str, ...] = ("inputs",)
    TARGET_FIELDS: tuple[str, ...] = ("targets",)
    SUBSET_FIELDS: tuple[str, ...] = ("subset",)
    DEFAULT_CONFIG_NAME = "sample"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config.validate()

    def _features(self) -> datasets.Features:
        return datasets.Features({k: datasets.Value("string") for k in ("subset", "inputs", "targets")})

    def _generate_examples(self, files: list[str]) -> Iterator[tuple[Key, dict[str, Any]]]:
        cfg: PromptedConfig = self.config
        if cfg.per_subset is None:  # everything, streamed straight through
            yield from super()._generate_examples(files)
            return
        sampler = SubsetSampler(cfg.per_subset, seed=cfg.seed)
        for path in files:
            for example in self._examples(path):
                sampler.add(example["subset"], example)
        for idx, (_, example) in enumerate(sampler.items()):
            yield Key(0, idx), example

    def _examples(self, path: str) -> Iterator[dict[str, Any]]:
        subsets = self.config.subsets
        wanted = set(subsets) if subsets else None
        folder = posixpath.basename(posixpath.dirname(str(path).replace("\\", "/")))
        for line, row in iter_records(path):
            subset = _first(row, self.SUBSET_FIELDS, path, line, required=False) or folder
            if wanted is not None and subset not in wanted:
                continue
            yield {
                "subset": subset,
                "inputs": _first(row, self.INPUT_FIELDS, path, line),
                "targets": _first(row, self.TARGET_FIELDS, path, line),
            }


def _first(row: dict[str, Any], names: tuple[str, ...], path: str, line: int, required: bool = True) -> str | None:
    for name in names:
        if row.get(name) is not None:
            return field_value(row, name, path, line)  # checks it is a str
    if required:
        raise DataFileError(path, line, names[0], f"missing (looked for {list(names)}; the row has {sorted(row)})")
    return None
