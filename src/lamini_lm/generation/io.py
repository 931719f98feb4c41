"""Reading instruction and topic tables, and writing generation datasets atomically.

Inputs may be a JSONL file, a JSON list, a CSV/TSV file, a parquet file or a folder written by
``Dataset.save_to_disk`` (or a ``DatasetDict`` folder with a ``train`` split). Outputs are ``save_to_disk``
folders written to a temporary sibling and renamed into place, so a crash never leaves half a dataset.

Example:
    >>> from lamini_lm.generation.io import load_table  # doctest: +SKIP
    >>> load_table("seeds.jsonl", required=["instruction"]).column_names  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamini_lm.records import GENERATION_COLUMNS, generation_features

if TYPE_CHECKING:
    import datasets

__all__ = ["load_table", "rows_to_dataset", "save_dataset"]


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
            raise FileNotFoundError(f"{path}: no such file or folder")
        if path.is_dir():
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if "train" not in loaded:
                    raise ValueError(f"{path}: a DatasetDict without a 'train' split ({list(loaded)})")
                loaded = loaded["train"]
            ds = loaded
        elif path.suffix == ".parquet":
            ds = datasets.Dataset.from_parquet(str(path))
        elif path.suffix in (".csv", ".tsv"):
            ds = datasets.Dataset.from_csv(str(path), sep="\t" if path.suffix == ".tsv" else ",")
        elif path.suffix in (".jsonl", ".json"):
            ds = _from_rows(_read_json_rows(path))
        else:
            raise ValueError(
                f"{path}: unsupported format; use .jsonl, .json, .csv, .tsv, .parquet or a dataset folder"
            )
    missing = [c for c in required if c not in ds.column_names]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}; found {ds.column_names}")
    return ds


def _from_rows(rows: list[dict[str, Any]]) -> datasets.Dataset:
    """``Dataset.from_list`` over the union of the rows' keys (it would take the first row's keys only)."""
    import datasets

    columns = list(dict.fromkeys(k for r in rows for k in r))
    return datasets.Dataset.from_dict({c: [r.get(c) for r in rows] for c in columns})


def _read_json_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file (or a JSON list), with errors naming the line."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        rows = json.loads(text)
    else:
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON: {e.msg}") from None
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise ValueError(f"{path}: row {n} is {type(row).__name__}, expected an object")
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def rows_to_dataset(rows: list[dict[str, Any]]) -> datasets.Dataset:
    """A Dataset with exactly the columns and types of :func:`~lamini_lm.records.generation_features`."""
    import datasets

    columns = {c: [r.get(c) for r in rows] for c in GENERATION_COLUMNS}
    for c in ("seed_ids", "topics"):
        columns[c] = [list(v or []) for v in columns[c]]
    for c in ("prompt_tokens", "completion_tokens"):
        columns[c] = [int(v or 0) for v in columns[c]]
    columns["cost_usd"] = [float(v or 0.0) for v in columns["cost_usd"]]
    return datasets.Dataset.from_dict(columns, features=generation_features())


def save_dataset(ds: datasets.Dataset, output: str | os.PathLike, overwrite: bool = False) -> Path:
    """``ds.save_to_disk(output)`` atomically: into a temporary sibling folder, then renamed into place."""
    output = Path(output)
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass overwrite=True (--overwrite) to replace it")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    try:
        ds.save_to_disk(str(tmp / "data"))
        if output.exists():
            old = tmp / "old"
            os.replace(output, old)  # moved aside first: a directory cannot be renamed onto a non-empty one
        os.replace(tmp / "data", output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return output
