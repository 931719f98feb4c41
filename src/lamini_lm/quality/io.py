"""Column access, batched reading and sharded parquet writing for the quality steps.

The quality stages never hold a whole table: they read the input as Arrow record batches (:func:`iter_batches`:
JSON Lines through pyarrow's streaming JSON reader, parquet files and release folders by row group, ``save_to_disk``
folders from their Arrow files) and write the rows they keep as parquet shards (:class:`ShardWriter`:
``data/train-00000-of-00004.parquet`` ..., the layout :func:`lamini_lm.io.load_table` and the Hub read).

Example:
    >>> import datasets, tempfile
    >>> from lamini_lm.quality.io import ShardWriter, column, iter_batches
    >>> column(datasets.Dataset.from_dict({"instruction": ["Add 2 and 3."]}), "instruction")
    ['Add 2 and 3.']
    >>> tmp = tempfile.mkdtemp()
    >>> _ = datasets.Dataset.from_dict({"instruction": ["a", "b", "c"]}).to_json(f"{tmp}/in.jsonl")
    >>> [b.num_rows for b in iter_batches(f"{tmp}/in.jsonl", batch_rows=2)]
    [2, 1]
    >>> with ShardWriter(f"{tmp}/out", rows_per_shard=2) as w:
    ...     for b in iter_batches(f"{tmp}/in.jsonl"):
    ...         w.write(b)
    >>> [p.name for p in sorted((w.folder / "data").iterdir())], w.rows
    (['train-00000-of-00002.parquet', 'train-00001-of-00002.parquet'], 3)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lamini_lm.errors import DataError

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

__all__ = ["ShardWriter", "column", "input_columns", "iter_batches", "parse_bytes"]

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20,
          "GIB": 2**30, "TIB": 2**40}  # fmt: skip


def column(ds: datasets.Dataset, name: str) -> list:
    """One column as a Python list (``ds[name][:]``: datasets 5 returns a lazy ``Column`` for ``ds[name]``).

    A missing column is a :class:`~lamini_lm.errors.DataError` naming it and the columns there are.
    """
    if name not in ds.column_names:
        raise DataError(f"the dataset has no {name!r} column (its columns: {', '.join(ds.column_names)})")
    return ds[name][:]


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
