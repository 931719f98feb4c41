"""Reading tables and writing outputs atomically: the file handling every stage shares.

Whole tables (:func:`load_table`), rows with their line numbers (:func:`iter_records`), and, for bounded memory at
millions of rows, Arrow record batches (:func:`iter_batches`) and sharded parquet output (:class:`ShardWriter`:
``data/train-00000-of-00004.parquet`` ..., the release layout the Hub serves).

Inputs may be a JSONL file, a JSON list, a CSV/TSV file, a parquet file or a folder written by
``Dataset.save_to_disk`` (a ``DatasetDict`` folder gives its ``train`` split, or its only split). Outputs go to a
temporary sibling and are renamed into place, so a crash never leaves half a dataset or half a file.

Folders a stage writes go through :func:`lamini_lm.artifacts.artifact_output` (beside the target, then renamed with
:func:`replace_dir`); single files through :func:`write_text_atomic`.

Example:
    >>> import datasets, os, tempfile
    >>> from lamini_lm.io import load_table
    >>> out = os.path.join(tempfile.mkdtemp(), "kept")
    >>> datasets.Dataset.from_dict({"instruction": ["Add 2 and 3."]}).save_to_disk(out)
    >>> load_table(out, required=["instruction"])["instruction"][:]
    ['Add 2 and 3.']
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamini_lm.errors import DataError, DataFileError, UsageError

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "ShardWriter",
    "input_columns",
    "iter_batches",
    "parse_bytes",
    "column",
    "field_value",
    "iter_records",
    "load_table",
    "open_source",
    "release_shards",
    "replace_dir",
    "write_json",
    "write_text_atomic",
]


def load_table(
    source: str | os.PathLike | datasets.Dataset | Sequence[Mapping[str, Any]], required: Iterable[str] = ()
) -> datasets.Dataset:
    """A ``datasets.Dataset`` from a path, a Dataset or a list of dicts, checked for ``required`` columns."""
    import datasets

    if isinstance(source, datasets.Dataset):
        ds, name = source, "dataset"
    elif isinstance(source, (list, tuple)):
        ds, name = _from_rows([dict(r) for r in source]), "list of rows"
    else:
        path = Path(source)
        name = str(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no dataset there (no such file or folder)")
        if path.is_dir():
            ds = _load_folder(path)
        elif path.suffix == ".parquet":
            ds = datasets.Dataset.from_parquet(str(path))
        elif path.suffix in (".csv", ".tsv"):
            ds = datasets.Dataset.from_csv(str(path), sep="\t" if path.suffix == ".tsv" else ",")
        elif path.suffix in (".jsonl", ".json"):
            rows = [row for _, row in iter_records(str(path))]
            if not rows:
                raise DataError(f"{path}: no rows")
            ds = _from_rows(rows)
        else:
            raise UsageError(
                f"{path}: unsupported format; use .jsonl, .json, .csv, .tsv, .parquet or a dataset folder"
            )
    missing = [c for c in required if c not in ds.column_names]
    if missing:
        raise DataError(f"{name}: missing column(s) {missing}; found {ds.column_names}")
    return ds


def release_shards(folder: str | os.PathLike) -> list[Path]:
    """The parquet shards of a release folder (``data/*.parquet``, the layout the Hub serves), sorted; empty when
    ``folder`` is not one."""
    return sorted((Path(folder) / "data").glob("*.parquet"))


def column(ds: datasets.Dataset, name: str) -> list:
    """One column as a Python list (``ds[name][:]``: datasets 5 returns a lazy ``Column`` for ``ds[name]``).

    A missing column is a :class:`~lamini_lm.errors.DataError` naming it and the columns there are.
    """
    if name not in ds.column_names:
        raise DataError(f"the dataset has no {name!r} column (its columns: {', '.join(ds.column_names)})")
    return ds[name][:]


def _load_folder(path: Path) -> datasets.Dataset:
    """A ``save_to_disk`` folder (a DatasetDict gives ``train`` or its only split) or a release folder (parquet
    shards under ``data/``, as the Hub serves them)."""
    import datasets

    if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if "train" not in loaded and len(loaded) != 1:
                raise DataError(f"{path}: a DatasetDict with splits {list(loaded)} and no 'train'; pass one split")
            loaded = loaded["train"] if "train" in loaded else next(iter(loaded.values()))
        return loaded
    shards = release_shards(path)
    if shards:
        return datasets.Dataset.from_parquet([str(p) for p in shards])
    raise DataError(
        f"{path}: not a dataset folder (no state.json from save_to_disk, no data/*.parquet release shards)"
    )


def _from_rows(rows: list[dict[str, Any]]) -> datasets.Dataset:
    """``Dataset.from_list`` over the union of the rows' keys (it would take the first row's keys only)."""
    import datasets

    columns = list(dict.fromkeys(k for r in rows for k in r))
    return datasets.Dataset.from_dict({c: [r.get(c) for r in rows] for c in columns})


# What iter_records can read.
SUPPORTED_EXTENSIONS = (".jsonl", ".json", ".parquet", ".csv", ".tsv")


def open_source(path: str, mode: str = "r"):
    """Open a local path, ``hf://`` path or URL (text mode is UTF-8), in download and in streaming mode alike."""
    from datasets.utils.file_utils import xopen

    if "b" in mode:
        return xopen(path, mode)
    return xopen(path, mode, encoding="utf-8")


def iter_records(path: str, columns: Sequence[str] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line, row)`` for each row of a ``.jsonl``/``.json``/``.parquet``/``.csv``/``.tsv`` file.

    ``line`` is 1-based: the text line for JSON Lines and CSV (after the header), the item for a JSON array, the
    row for parquet. A line that is not valid JSON or not an object raises :class:`DataFileError`.
    Memory stays flat: JSON Lines, CSV and parquet are read incrementally (parquet by record batch).
    """
    name = str(path).lower().removesuffix(".gz")
    if name.endswith(".parquet"):
        yield from _iter_parquet(path, columns)
    elif name.endswith((".csv", ".tsv")):
        with open_source(path) as f:
            reader = csv.DictReader(f, delimiter="\t" if name.endswith(".tsv") else ",")
            for i, row in enumerate(reader, start=2):  # line 1 is the header
                yield i, row
    elif name.endswith(".json") and _starts_with_bracket(path):
        # A JSON array (Alpaca's alpaca_data.json): parsed whole; such files are tens of MB, not GB.
        with open_source(path) as f:
            try:
                items = json.load(f)
            except json.JSONDecodeError as e:
                raise DataFileError(path, e.lineno, None, f"not valid JSON ({e.msg})") from None
        for i, item in enumerate(items, start=1):
            if not isinstance(item, dict):
                raise DataFileError(path, i, None, f"expected a JSON object, got {type(item).__name__}")
            yield i, item
    else:  # JSON Lines (.jsonl, or .json with one object per line)
        with open_source(path) as f:
            for i, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                try:
                    item = json.loads(text)
                except json.JSONDecodeError as e:
                    raise DataFileError(path, i, None, f"not valid JSON ({e.msg} at column {e.colno})") from None
                if not isinstance(item, dict):
                    raise DataFileError(path, i, None, f"expected a JSON object, got {type(item).__name__}")
                yield i, item


def _starts_with_bracket(path: str) -> bool:
    # a local file is opened directly: open_source imports `datasets` (a second of start-up) for URLs' sake
    with open_source(path) if "://" in str(path) else open(path, encoding="utf-8") as f:
        head = f.read(256).lstrip()
    return head.startswith("[")


def _iter_parquet(path: str, columns: Sequence[str] | None) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    with open_source(path, "rb") as f:
        pf = pq.ParquetFile(f)
        names = pf.schema_arrow.names
        if columns is not None:
            missing = [c for c in columns if c not in names]
            if missing:
                raise DataFileError(path, None, missing[0], f"column missing (the file has {names})")
        line = 0
        for batch in pf.iter_batches(batch_size=4096, columns=list(columns) if columns else None):
            for row in batch.to_pylist():
                line += 1
                yield line, row


def field_value(
    row: dict[str, Any], name: str, path: str, line: int, kind: type | tuple = str, optional=False, unit="line"
):
    """``row[name]``, checked: a missing field or a value of the wrong type raises :class:`DataFileError`."""
    if name not in row or (row[name] is None and not optional):
        problem = "is null" if name in row else f"missing (the row has {sorted(row)})"
        raise DataFileError(path, line, name, problem, unit)
    value = row[name]
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DataFileError(path, line, name, f"expected {want}, got {type(value).__name__} {value!r:.60}", unit)
    return value


def replace_dir(src: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Rename folder ``src`` to ``dest``, replacing whatever ``dest`` held.

    An existing ``dest`` is first moved aside (a directory cannot be renamed onto a non-empty one) and deleted only
    after ``src`` is in place, so ``dest`` is missing just between two renames, not while a tree is being deleted.
    """
    dest = Path(dest)
    if not dest.exists():
        os.replace(src, dest)
        return dest
    aside = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
    try:
        os.replace(dest, aside / "old")
        os.replace(src, dest)
    finally:
        shutil.rmtree(aside, ignore_errors=True)
    return dest


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary sibling and ``os.replace``; nothing half-written is left."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    # not mkstemp, whose files are 0600: created like open(path, "w") would, so the umask sets the mode
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


# --- batched reading and sharded writing (bounded memory at millions of rows) ---

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20,
          "GIB": 2**30, "TIB": 2**40}  # fmt: skip


def parse_bytes(text: str | int) -> int:
    """``"4GB"`` -> 4e9, ``"512MiB"`` -> 2**29, ``"1.5 GB"``, or a plain number of bytes."""
    s = str(text).strip().upper().replace(" ", "")
    num = s.rstrip("KMGTIB")
    unit = s[len(num) :]
    if unit not in _UNITS:
        raise ValueError(f"unknown unit {unit!r} in {text!r} (use e.g. 4GB, 512MB, 2GiB)")
    return int(float(num) * _UNITS[unit])


def _files(path: Path) -> tuple[str, list[Path]]:
    """(format, files in row order) of a quality input."""
    if path.is_dir():
        if (path / "dataset_dict.json").is_file():
            splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
            if "train" not in splits and len(splits) != 1:
                raise DataError(f"{path}: a DatasetDict with splits {splits} and no 'train'; pass one split")
            return _files(path / ("train" if "train" in splits else splits[0]))
        if (path / "state.json").is_file():
            state = json.loads((path / "state.json").read_text())
            return "arrow", [path / f["filename"] for f in state["_data_files"]]
        shards = sorted((path / "data").glob("*.parquet")) or sorted(path.glob("*.parquet"))
        if shards:
            return "parquet", shards
        raise DataError(
            f"{path}: not a dataset folder (no state.json from save_to_disk, no data/*.parquet release shards)"
        )
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return "parquet", [path]
    if suffix in (".jsonl", ".json"):
        return "json", [path]
    return "table", [path]


def _json_batches(path: Path, columns: Sequence[str] | None, batch_rows: int) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa
    import pyarrow.json as pj

    from lamini_lm.io import _starts_with_bracket, iter_records

    if _starts_with_bracket(str(path)):  # a JSON array: parsed whole (such files are small), then batched
        yield from _table_batches(path, columns, batch_rows)
        return
    done = 0
    try:
        reader = pj.open_json(str(path), read_options=pj.ReadOptions(block_size=16 << 20))
        for batch in reader:
            if columns is not None:
                batch = batch.select([c for c in columns if c in batch.schema.names])
            for start in range(0, batch.num_rows, batch_rows):
                part = batch.slice(start, batch_rows)
                yield part
                done += part.num_rows
        return
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    # pyarrow could not read it (a broken line, a field whose type changes, a key first seen late): read the rest
    # line by line, which names the line of a broken row (DataFileError) and takes the union of the keys.
    rows: list[dict] = []
    for i, (_, row) in enumerate(iter_records(str(path))):
        if i < done:
            continue
        rows.append({c: row.get(c) for c in columns} if columns is not None else row)
        if len(rows) == batch_rows:
            yield _rows_batch(rows, path, i + 2 - len(rows))
            rows = []
    if rows:
        yield _rows_batch(rows, path, i + 2 - len(rows))


def _rows_batch(rows: list[dict], path: Path, first_line: int):
    import pyarrow as pa

    keys = list(dict.fromkeys(k for r in rows for k in r))
    arrays = {}
    for k in keys:
        try:
            arrays[k] = pa.array([r.get(k) for r in rows])
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise DataError(
                f"{path}: field {k!r} holds values of different types in rows {first_line}-"
                f"{first_line + len(rows) - 1} ({e})"
            ) from None
    return pa.RecordBatch.from_pydict(arrays)


def _table_batches(path: Path, columns: Sequence[str] | None, batch_rows: int) -> Iterator[pa.RecordBatch]:
    from lamini_lm.io import load_table

    table = load_table(path).data.table
    if columns is not None:
        table = table.select([c for c in columns if c in table.column_names])
    yield from table.to_batches(max_chunksize=batch_rows)


def input_columns(path: str | os.PathLike) -> list[str]:
    """Column names of a quality input (read from the schema or the first batch)."""
    source = Path(path)
    fmt, files = _files(source)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(files[0]).names)
    if fmt == "arrow":
        import pyarrow as pa

        with pa.memory_map(str(files[0])) as f:
            return list(pa.ipc.open_stream(f).schema.names)
    if fmt == "json" and not _starts_with_bracket(str(files[0])):
        import pyarrow as pa
        import pyarrow.json as pj

        try:  # the first block's schema, without the reader's read-ahead of the blocks after it
            opts = pj.ReadOptions(block_size=16 << 20, use_threads=False)
            return list(pj.open_json(str(files[0]), read_options=opts).schema.names)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            pass  # iter_batches says which line is broken, or reads around it
    for batch in iter_batches(source, batch_rows=1000):
        return list(batch.schema.names)
    raise DataError(f"{source}: no rows")


def iter_batches(
    path: str | os.PathLike, columns: Sequence[str] | None = None, batch_rows: int = 65536
) -> Iterator[pa.RecordBatch]:
    """The rows of a quality input as Arrow record batches of at most ``batch_rows`` rows, in row order.

    ``path`` is a ``.jsonl``/``.json``/``.parquet``/``.csv`` file, a ``save_to_disk`` folder or a folder of parquet
    shards (``data/*.parquet``). ``columns`` selects columns (missing ones are left out: callers check). Memory is
    one batch, whatever the file's size (a JSON array or a CSV file is read whole: they are small).
    """
    source = Path(path)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no dataset there (no such file or folder)")
    fmt, files = _files(source)
    cols = list(columns) if columns is not None else None
    if fmt == "json":
        yield from _json_batches(files[0], cols, batch_rows)
    elif fmt == "table":
        yield from _table_batches(files[0], cols, batch_rows)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        for f in files:
            pf = pq.ParquetFile(str(f))
            use = [c for c in cols if c in pf.schema_arrow.names] if cols is not None else None
            yield from pf.iter_batches(batch_size=batch_rows, columns=use)
    else:  # arrow IPC streams of save_to_disk
        import pyarrow as pa

        for f in files:
            with pa.memory_map(str(f)) as mm:
                for batch in pa.ipc.open_stream(mm):
                    if cols is not None:
                        batch = batch.select([c for c in cols if c in batch.schema.names])
                    for start in range(0, batch.num_rows, batch_rows):
                        # copy out of the memory map: the batch outlives it
                        yield pa.RecordBatch.from_arrays(
                            [pa.concat_arrays([a]) for a in batch.slice(start, batch_rows).columns],
                            schema=batch.schema,
                        )


class ShardWriter:
    """Write record batches as parquet shards ``folder/data/train-XXXXX-of-YYYYY.parquet`` of ``rows_per_shard``.

    Shards are named ``train-XXXXX.parquet`` while written and renamed with their count on :meth:`close`; batches
    whose schema differs from the first one's are cast to it (a column that is all null in one batch).
    """

    def __init__(self, folder: str | os.PathLike, rows_per_shard: int = 500_000, compression: str = "zstd"):
        self.folder = Path(folder)
        self.rows_per_shard = rows_per_shard
        self.compression = compression
        self.rows = 0
        self._writer = None
        self._in_shard = 0
        self._paths: list[Path] = []
        self.schema = None

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _open(self) -> None:
        import pyarrow.parquet as pq

        path = self.folder / "data" / f"train-{len(self._paths):05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._paths.append(path)
        self._writer = pq.ParquetWriter(str(path), self.schema, compression=self.compression)
        self._in_shard = 0

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        import pyarrow as pa

        if self.schema is None:
            self.schema = batch.schema
        elif batch.schema != self.schema:
            new = [c for c in batch.schema.names if c not in self.schema.names]
            if new:
                raise DataError(
                    f"column {new[0]!r} first appears after row {self.rows:,}: the shards already written lack it; "
                    "give every row the same fields (null where empty)"
                )
            batch = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
            batch = batch.select(self.schema.names).cast(self.schema)
        start = 0
        while start < batch.num_rows:
            if self._writer is None or self._in_shard >= self.rows_per_shard:
                self._close_shard()
                self._open()
            take = min(batch.num_rows - start, self.rows_per_shard - self._in_shard)
            part = batch.slice(start, take)
            self._writer.write(part) if isinstance(part, pa.Table) else self._writer.write_batch(part)
            self._in_shard += take
            self.rows += take
            start += take

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def close(self, schema: pa.Schema | None = None) -> list[Path]:
        """Finish the last shard (an empty one holding ``schema`` when no row was written) and name them all."""
        if self._writer is None and not self._paths:
            import pyarrow as pa

            self.schema = self.schema or schema or pa.schema([])
            self._open()
        self._close_shard()
        n = len(self._paths)
        final = []
        for i, p in enumerate(self._paths):
            target = p.with_name(f"train-{i:05d}-of-{n:05d}.parquet")
            if p.exists():
                p.rename(target)
            final.append(target)
        self._paths = final
        return final
