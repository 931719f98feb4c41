"""Reading tables and writing outputs atomically: the file handling every stage shares.

Inputs may be a JSONL file, a JSON list, a CSV/TSV file, a parquet file or a folder written by
``Dataset.save_to_disk`` (a ``DatasetDict`` folder gives its ``train`` split, or its only split). Outputs go to a
temporary sibling and are renamed into place, so a crash never leaves half a dataset or half a file.

Example:
    >>> import datasets, os, tempfile
    >>> from lamini_lm.io import load_table, save_dataset
    >>> out = os.path.join(tempfile.mkdtemp(), "kept")
    >>> _ = save_dataset(datasets.Dataset.from_dict({"instruction": ["Add 2 and 3."]}), out)
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

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "column",
    "field_value",
    "iter_records",
    "load_table",
    "open_source",
    "release_shards",
    "replace_dir",
    "save_dataset",
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
    with open_source(path) as f:
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


def save_dataset(ds: datasets.Dataset, output: str | os.PathLike, overwrite: bool = False) -> Path:
    """``ds.save_to_disk(output)`` atomically: into a temporary sibling folder, then renamed into place."""
    output = Path(output)
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass overwrite=True (--overwrite) to replace it")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    try:
        ds.save_to_disk(str(tmp / "data"))
        replace_dir(tmp / "data", output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return output


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
