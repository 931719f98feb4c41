"""The LaMini instructions: ``instruction``, ``response``, ``instruction_source`` (SPEC 5), one config per
``instruction_source`` plus ``all``, ``generation`` with every provenance and usage column, and ``dialogues``: the
multi-turn rows (``messages``, ``instruction_source``, ``turns``) of ``lamini-lm generate dialogues`` runs or of the
multi-turn source builders (ShareGPT, UltraChat, OpenAssistant). A dialogue that is not ``complete`` (a failed or
unsent turn) is skipped and counted; inputs without a ``messages`` column give it no rows.

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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import datasets
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets.builder import Key

from lamini_lm.records import (
    DIALOGUE_COLUMNS,
    GENERATION_COLUMNS,
    LAMINI_COLUMNS,
    InstructionSource,
    generation_features,
    join_input,
)
from lamini_lm.records import lamini_features as _lamini_features

from ._io import (
    DataFileError,
    card_description,
    field_value,
    hub_files,
    inputs_fingerprint,
    iter_records,
    local_files,
    open_source,
)

logger = logging.getLogger(__name__)

__all__ = [
    "LAMINI_REPO",
    "Instructions",
    "InstructionsConfig",
    "check_messages",
    "dialogue_config_features",
    "is_saved_dataset",
]

LAMINI_REPO = "MBZUAI/LaMini-instruction"
_VERSION = datasets.Version("1.0.0")
_BATCH = 10_000  # rows per Arrow batch: memory stays flat, Python overhead per row stays small
_SOURCES = pa.array([s.value for s in InstructionSource])
_SOURCE_LIST = ", ".join(s.value for s in InstructionSource)
# Values a row of plain LaMini data gets in the generation-only columns of the ``generation`` config.
_EMPTY = {"seed_ids": [], "topics": [], "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
# Columns read from an input: the generation ones, and Alpaca's ``input`` (joined into ``instruction``, then dropped).
_READ = (*GENERATION_COLUMNS, "input")


@dataclass
class InstructionsConfig(datasets.BuilderConfig):
    """Args:
    source: keep only rows of this ``instruction_source`` (None: every source).
    full_columns: every column of a generation run (provenance, usage, errors) instead of the LaMini three.
    """

    source: str | None = None
    full_columns: bool = False
    dialogues: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.source is not None:
            self.source = InstructionSource.parse(self.source).value


def dialogue_config_features() -> datasets.Features:
    """The ``dialogues`` config's columns: ``messages`` (``[{role, content}]``, user first, alternating, ending on an
    assistant turn), ``instruction_source`` (a LaMini source, or the dataset a human dialogue came from) and
    ``turns`` (assistant turns)."""
    string = datasets.Value("string")
    return datasets.Features(
        {
            "messages": datasets.List({"role": string, "content": string}),
            "instruction_source": string,
            "turns": datasets.Value("int64"),
        }
    )


def check_messages(messages, where: str, line: int | None, unit: str = "line") -> list[dict[str, str]]:
    """``messages`` checked: a list of ``{role, content}`` strings, roles ``user``/``assistant`` alternating from
    ``user``, ending on ``assistant``. A problem raises :class:`DataFileError` naming ``messages[i].field``."""
    if not isinstance(messages, list) or not messages:
        raise DataFileError(
            where, line, "messages", f"expected a non-empty list of {{role, content}}, got {messages!r:.60}", unit
        )
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise DataFileError(where, line, f"messages[{i}]", f"expected {{role, content}}, got {m!r:.60}", unit)
        for key in ("role", "content"):
            if not isinstance(m.get(key), str):
                raise DataFileError(
                    where, line, f"messages[{i}].{key}", f"expected a string, got {m.get(key)!r:.60}", unit
                )
        want = "user" if i % 2 == 0 else "assistant"
        if m["role"] != want:
            raise DataFileError(
                where,
                line,
                f"messages[{i}].role",
                f"is {m['role']!r}, expected {want!r} (turns alternate from user)",
                unit,
            )
        out.append({"role": m["role"], "content": m["content"]})
    if out[-1]["role"] != "assistant":
        raise DataFileError(where, line, "messages", "ends on a user turn with no answer", unit)
    return out


def is_saved_dataset(path: str | os.PathLike) -> bool:
    """True for a folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    return os.path.isdir(path) and any(
        os.path.exists(os.path.join(path, f)) for f in ("state.json", "dataset_dict.json")
    )


class Instructions(datasets.ArrowBasedBuilder):
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
        InstructionsConfig(
            name="dialogues", version=_VERSION, dialogues=True, description="complete multi-turn dialogues"
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
            features=dialogue_config_features()
            if self.config.dialogues
            else generation_features()
            if self.config.full_columns
            else _lamini_features(),
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

    def _generate_tables(self, inputs: list[str]) -> Iterator[tuple[Key, pa.Table]]:
        self.skipped = Counter()
        for idx, path in enumerate(inputs):
            for batch_idx, table in enumerate(self._tables(path)):
                if table.num_rows:
                    yield Key(idx, batch_idx), table
        skipped = {reason: n for reason, n in self.skipped.items() if n}
        if skipped:
            logger.warning("%s: skipped %s", self.config.name, skipped)

    def _tables(self, path: str) -> Iterator[pa.Table]:
        """The input in batches of this config's schema; the projection and the checks run in Arrow."""
        if self.config.dialogues:
            yield from self._dialogue_tables(path)
            return
        if is_saved_dataset(path):
            loaded = datasets.load_from_disk(path)
            parts = [(path, loaded)] if isinstance(loaded, datasets.Dataset) else sorted(loaded.items())
            for split, ds in parts:
                where = path if split == path else f"{path} (split {split})"
                columns = [c for c in _READ if c in ds.column_names]
                offset = 0
                for table in ds.select_columns(columns).with_format("arrow").iter(batch_size=_BATCH):
                    yield self._project(table, where, lambda i, o=offset: o + i + 1, "row")
                    offset += table.num_rows
        elif str(path).lower().endswith(".parquet"):
            with open_source(path, "rb") as f:
                pf = pq.ParquetFile(f)
                columns = [c for c in _READ if c in pf.schema_arrow.names]
                offset = 0
                for batch in pf.iter_batches(batch_size=_BATCH, columns=columns):
                    yield self._project(pa.Table.from_batches([batch]), path, lambda i, o=offset: o + i + 1, "row")
                    offset += batch.num_rows
        else:  # JSON Lines, JSON, CSV: parsed row by row, so each row's fields are checked with its line number
            rows, lines = [], []
            for line, row in iter_records(path):
                for name in ("instruction_source", "instruction", "response", "error", "input"):
                    if name in ("instruction_source", "instruction", "response") or name in row:
                        field_value(row, name, path, line, optional=name in ("response", "error", "input"))
                rows.append({k: v for k, v in row.items() if k in _READ})
                lines.append(line)
                if len(rows) == _BATCH:
                    yield self._project(pa.Table.from_pylist(rows), path, lines.__getitem__, "line")
                    rows, lines = [], []
            if rows:
                yield self._project(pa.Table.from_pylist(rows), path, lines.__getitem__, "line")

    def _project(self, table: pa.Table, where: str, line_of: Callable[[int], int], unit: str) -> pa.Table:
        """``table`` checked, filtered to this config's rows (failed ones skipped and counted) and cast to its
        schema. Bad values raise :class:`DataFileError` with the line (or row) of the first one."""
        names = table.column_names
        for column in LAMINI_COLUMNS:
            if column not in names:
                raise DataFileError(where, None, column, f"column missing (the data has {names})")
        for column in (*LAMINI_COLUMNS, "error"):
            kind = table.schema.field(column).type if column in names else pa.null()
            if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
                raise DataFileError(where, None, column, f"column has type {kind}, expected string")
        source = table["instruction_source"].combine_chunks()
        valid = pc.fill_null(pc.is_in(source, value_set=_SOURCES), False)
        if not pc.all(valid).as_py():
            i = pc.index(valid, False).as_py()
            value = source[i].as_py()
            problem = "is null" if value is None else f"unknown instruction_source {value!r}; expected one of: "
            problem += _SOURCE_LIST if value is not None else ""
            raise DataFileError(where, line_of(i), "instruction_source", problem, unit)
        null_instruction = pc.is_null(table["instruction"].combine_chunks())
        if pc.any(null_instruction).as_py():
            i = pc.index(null_instruction, True).as_py()
            raise DataFileError(where, line_of(i), "instruction", "is null", unit)
        if "input" in names:
            table = _join_inputs(table, where)
        mask = None if self.config.source is None else pc.equal(source, self.config.source)
        if not self.config.full_columns:
            has_error = (
                pc.is_valid(table["error"].combine_chunks()) if "error" in names else pa.repeat(False, len(table))
            )
            failed = pc.or_(has_error, pc.is_null(table["response"].combine_chunks()))
            counted = failed if mask is None else pc.and_(failed, mask)
            self.skipped["error"] += pc.sum(pc.and_(counted, has_error)).as_py() or 0
            self.skipped["no_response"] += pc.sum(pc.and_(counted, pc.invert(has_error))).as_py() or 0
            mask = pc.invert(failed) if mask is None else pc.and_(mask, pc.invert(failed))
        if mask is not None:
            table = table.filter(mask)
        return self._conform(table, where)

    def _conform(self, table: pa.Table, where: str) -> pa.Table:
        """``table`` with exactly the columns and types of this config; absent generation columns get defaults."""
        schema = self.info.features.arrow_schema
        columns = []
        for field in schema:
            column = table[field.name] if field.name in table.column_names else pa.nulls(len(table), field.type)
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise DataFileError(where, None, field.name, f"cannot be read as {field.type}: {e}") from None
            if field.name in _EMPTY:
                column = pc.fill_null(column, pa.scalar(_EMPTY[field.name], type=field.type))
            columns.append(column)
        return pa.Table.from_arrays(columns, schema=schema)

    def _dialogue_tables(self, path: str) -> Iterator[pa.Table]:
        """The ``dialogues`` config: rows with ``messages``, checked row by row (dialogues are few and nested)."""
        rows: list[dict] = []
        where_unit = "row"
        if is_saved_dataset(path):
            loaded = datasets.load_from_disk(path)
            parts = [(path, loaded)] if isinstance(loaded, datasets.Dataset) else sorted(loaded.items())
            records = []
            for split, ds in parts:
                if "messages" not in ds.column_names:
                    self.skipped["no_messages_column"] += len(ds)
                    continue
                where = path if split == path else f"{path} (split {split})"
                columns = [c for c in DIALOGUE_COLUMNS if c in ds.column_names]
                records += [(where, i + 1, r) for i, r in enumerate(ds.select_columns(columns))]
        else:
            where_unit = "row" if str(path).lower().endswith(".parquet") else "line"
            records = [(path, line, r) for line, r in iter_records(path)]
        for where, line, row in records:
            if "messages" not in row:
                self.skipped["no_messages_column"] += 1
                continue
            if row.get("error") or row.get("complete") is False:
                self.skipped["incomplete"] += 1
                continue
            source = field_value(row, "instruction_source", where, line, unit=where_unit)
            messages = check_messages(row["messages"], where, line, where_unit)
            rows.append({"messages": messages, "instruction_source": source, "turns": len(messages) // 2})
            if len(rows) == _BATCH:
                yield pa.Table.from_pylist(rows, schema=self.info.features.arrow_schema)
                rows = []
        if rows:
            yield pa.Table.from_pylist(rows, schema=self.info.features.arrow_schema)


def _join_inputs(table: pa.Table, where: str) -> pa.Table:
    """``table`` with each non-empty ``input`` joined to its ``instruction`` (:func:`lamini_lm.records.join_input`)
    and the ``input`` column dropped: an Alpaca-format row keeps its input in the LaMini schema."""
    column = table["input"]
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type) or pa.types.is_null(column.type)):
        raise DataFileError(where, None, "input", f"column has type {column.type}, expected string")
    table = table.drop_columns(["input"])
    if pa.types.is_null(column.type):
        return table
    has_input = pc.fill_null(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(column)), 0), False)
    if not pc.any(has_input).as_py():
        return table
    instructions = table["instruction"].to_pylist()
    joined = [join_input(i, x) for i, x in zip(instructions, column.to_pylist())]
    return table.set_column(table.column_names.index("instruction"), "instruction", pa.array(joined, pa.string()))
