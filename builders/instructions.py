"""The LaMini instructions: ``instruction``, ``response``, ``instruction_source`` (SPEC 5), one config per
``instruction_source`` plus ``all``, and ``generation`` with every provenance and usage column.

The data is either the output of this library's generation runs (folders written by ``save_to_disk`` with
:func:`lamini_lm.records.generation_features` columns, or ``.jsonl``/``.parquet`` files with the LaMini columns),
or the released ``MBZUAI/LaMini-instruction`` parquet when asked for (``original=True``). Rows whose ``error`` is
set, or that have no response, are skipped and counted (``builder.skipped``); the ``generation`` config keeps them.

Use :func:`lamini_lm.builders.build_instructions` (or ``lamini-lm build``) to prepare every config into the cache
so that ``load_dataset("lamini_lm/instructions")`` works offline. The builder can also be used directly:

Example:
    >>> from lamini_lm.builders.instructions import Instructions
    >>> builder = Instructions(config_name="generated_flan", generated=["runs/flan/responses"])  # doctest: +SKIP
    >>> builder.download_and_prepare()  # doctest: +SKIP
    >>> ds = builder.as_dataset(split="train")  # doctest: +SKIP
    >>> it = Instructions(config_name="all", original=True).as_streaming_dataset(split="train")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import pyarrow.compute as pc
from datasets.builder import Key

from lamini_lm.records import GENERATION_COLUMNS, LAMINI_COLUMNS, InstructionSource, generation_features
from lamini_lm.records import lamini_features as _lamini_features

from ._io import DataFileError, card_description, field_value, hub_files, inputs_fingerprint, iter_records, local_files

logger = logging.getLogger(__name__)

__all__ = ["LAMINI_REPO", "Instructions", "InstructionsConfig", "is_saved_dataset"]

LAMINI_REPO = "MBZUAI/LaMini-instruction"
_STRING_TYPES = ("string", "large_string")
_VERSION = datasets.Version("1.0.0")
# Values a row of plain LaMini data gets in the generation-only columns of the ``generation`` config.
_EMPTY = {"seed_ids": [], "topics": [], "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}


@dataclass
class InstructionsConfig(datasets.BuilderConfig):
    """Args:
    source: keep only rows of this ``instruction_source`` (None: every source).
    full_columns: every column of a generation run (provenance, usage, errors) instead of the LaMini three.
    """

    source: str | None = None
    full_columns: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.source is not None:
            self.source = InstructionSource.parse(self.source).value


def is_saved_dataset(path: str | os.PathLike) -> bool:
    """True for a folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    return os.path.isdir(path) and any(
        os.path.exists(os.path.join(path, f)) for f in ("state.json", "dataset_dict.json")
    )


class Instructions(datasets.GeneratorBasedBuilder):
    """Builder of the LaMini instructions.

    Args (besides the ``datasets.DatasetBuilder`` ones):
        generated: folders written by generation runs (``save_to_disk``), or ``.jsonl``/``.json``/``.parquet``
            files with the LaMini columns. ``data_files=``/``data_dir=`` are read the same way.
        original: also read the released ``MBZUAI/LaMini-instruction`` (from the Hub, or ``original_files``).
        original_files: local copies of the released parquet files.
        original_revision: the Hub revision of the released dataset to read.
    """

    VERSION = _VERSION
    BUILDER_CONFIG_CLASS = InstructionsConfig
    BUILDER_CONFIGS = [
        InstructionsConfig(name="all", version=_VERSION, description="every instruction source"),
        *[InstructionsConfig(name=s.value, version=_VERSION, source=s.value) for s in InstructionSource],
        InstructionsConfig(
            name="generation", version=_VERSION, full_columns=True, description="all generation columns and errors"
        ),
    ]
    DEFAULT_CONFIG_NAME = "all"

    def __init__(
        self,
        *args,
        generated: Sequence[str | os.PathLike] = (),
        original: bool = False,
        original_files: Sequence[str | os.PathLike] | None = None,
        original_revision: str | None = None,
        **kwargs,
    ):
        # Inputs are builder attributes, not config fields: the cache layout needs config_id == config name so
        # that load_dataset("lamini_lm/instructions", "<config>") finds it; the build hash covers the inputs.
        self.generated = [os.fspath(p) for p in generated]
        self.original_files = [os.fspath(p) for p in original_files or []]
        self.original = bool(original or self.original_files)
        self.original_revision = original_revision
        self.skipped: Counter[str] = Counter()
        kwargs.setdefault("dataset_name", "instructions")
        # Prepared data is cached under a hash of the inputs, so other (or rewritten) inputs are never served stale.
        if kwargs.get("hash") is None:
            inputs = self.generated + self.original_files
            kwargs["hash"] = inputs_fingerprint(inputs, f"{self.original}|{original_revision}")[:16]
        super().__init__(*args, **kwargs)

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=card_description("instructions"),
            features=generation_features() if self.config.full_columns else _lamini_features(),
            homepage="https://github.com/mbzuai-nlp/LaMini-LM",
            license="cc-by-nc-4.0",
        )

    def _split_generators(self, dl_manager):
        inputs = list(self.generated)
        data_dir = self.config.data_dir
        if data_dir and is_saved_dataset(data_dir):
            inputs.append(data_dir)
        else:
            inputs += local_files(None, data_dir)
        inputs += local_files(self.config.data_files)
        if self.original:
            files = self.original_files or dl_manager.download(
                hub_files(LAMINI_REPO, "data/*.parquet", revision=self.original_revision)
            )
            inputs += list(files)
        if not inputs:
            raise ValueError("nothing to build: pass generated=[folders of generation runs] and/or original=True")
        return [datasets.SplitGenerator(name=datasets.Split.TRAIN, gen_kwargs={"inputs": inputs})]

    def _generate_shards(self, inputs):
        yield from inputs

    def _generate_examples(self, inputs: list[str]) -> Iterator[tuple[Key, dict[str, Any]]]:
        self.skipped = Counter()
        for idx, path in enumerate(inputs):
            rows = self._saved_rows(path) if is_saved_dataset(path) else self._file_rows(path)
            n = 0
            for row in rows:
                if row is not None:
                    yield Key(idx, n), row
                    n += 1
        if self.skipped:
            logger.warning("%s: skipped %s", self.config.name, dict(self.skipped))

    def _file_rows(self, path: str) -> Iterator[dict[str, Any] | None]:
        for line, row in iter_records(path):
            yield self._project(row, path, line, "line")

    def _saved_rows(self, path: str) -> Iterator[dict[str, Any] | None]:
        loaded = datasets.load_from_disk(path)
        parts = [(path, loaded)] if isinstance(loaded, datasets.Dataset) else sorted(loaded.items())
        for split, ds in parts:
            where = path if split == path else f"{path} (split {split})"
            self._check_columns(ds, where)
            columns = [c for c in GENERATION_COLUMNS if c in ds.column_names]
            offset = 0
            for batch in ds.select_columns(columns).with_format("arrow").iter(batch_size=1000):
                rows, lines = batch, range(batch.num_rows)
                if self.config.source is not None and not self.config.full_columns:
                    # A per-source config converts only its own rows to Python: the other sources stay in Arrow.
                    keep = pc.indices_nonzero(pc.equal(batch["instruction_source"], self.config.source))
                    rows, lines = batch.take(keep), keep.to_pylist()
                for i, row in zip(lines, rows.to_pylist()):
                    yield self._project(row, where, offset + i + 1, "row")
                offset += batch.num_rows

    @staticmethod
    def _check_columns(ds: datasets.Dataset, where: str) -> None:
        for column in LAMINI_COLUMNS:
            if column not in ds.column_names:
                raise DataFileError(where, None, column, f"column missing (the dataset has {ds.column_names})")
        for column in (*LAMINI_COLUMNS, "error"):
            feature = ds.features.get(column)
            if feature is not None and getattr(feature, "dtype", None) not in _STRING_TYPES:
                raise DataFileError(where, None, column, f"column has type {feature}, expected string")

    def _project(self, row: dict[str, Any], path: str, line: int, unit: str) -> dict[str, Any] | None:
        """The row in this config's schema, or None when it is filtered out or skipped (and counted)."""
        source = field_value(row, "instruction_source", path, line, unit=unit)
        try:
            source = InstructionSource.parse(source).value
        except ValueError as e:
            raise DataFileError(path, line, "instruction_source", str(e), unit) from None
        if self.config.source is not None and source != self.config.source:
            return None
        field_value(row, "instruction", path, line, unit=unit)
        failed = row.get("error") is not None or row.get("response") is None
        if self.config.full_columns:
            out = {c: row.get(c, _EMPTY.get(c)) for c in GENERATION_COLUMNS}
            out.update({k: v for k, v in _EMPTY.items() if out[k] is None})
            out["instruction_source"] = source
            return out
        if failed:
            self.skipped["error" if row.get("error") is not None else "no_response"] += 1
            return None
        field_value(row, "response", path, line, unit=unit)
        return {"instruction": row["instruction"], "response": row["response"], "instruction_source": source}
