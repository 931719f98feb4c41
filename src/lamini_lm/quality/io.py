"""Reading the CLI's inputs (a ``save_to_disk`` folder, parquet or JSON Lines) and writing outputs atomically.

Example:
    >>> import datasets, tempfile, os
    >>> from lamini_lm.quality.io import column, load_table, save_dataset, write_json
    >>> out = os.path.join(tempfile.mkdtemp(), "kept")
    >>> save_dataset(datasets.Dataset.from_dict({"instruction": ["Add 2 and 3."]}), out)
    >>> column(load_table(out), "instruction")
    ['Add 2 and 3.']
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets

__all__ = ["column", "load_table", "save_dataset", "write_json"]


def column(ds: datasets.Dataset, name: str) -> list:
    """One column as a Python list (``ds[name][:]``: datasets 5 returns a lazy ``Column`` for ``ds[name]``)."""
    if name not in ds.column_names:
        raise KeyError(f"column {name!r} not in dataset columns {ds.column_names}")
    return ds[name][:]


def load_table(path: str | os.PathLike) -> datasets.Dataset:
    """A ``datasets.Dataset`` from a ``save_to_disk`` folder, a parquet file or a JSON Lines file."""
    import datasets

    path = os.fspath(path)
    if os.path.isdir(path):
        loaded = datasets.load_from_disk(path)
        if isinstance(loaded, datasets.DatasetDict):
            if len(loaded) != 1:
                raise ValueError(f"{path}: a DatasetDict with splits {list(loaded)}; pass one split's folder")
            loaded = next(iter(loaded.values()))
        return loaded
    if not os.path.exists(path):
        raise FileNotFoundError(f"no dataset at {path} (expected a save_to_disk folder, .parquet or .jsonl)")
    if path.endswith(".parquet"):
        return datasets.Dataset.from_parquet(path)
    if path.endswith((".jsonl", ".json")):
        return datasets.Dataset.from_json(path)
    raise ValueError(f"{path}: unsupported file type (expected a save_to_disk folder, .parquet, .jsonl or .json)")


def save_dataset(ds: datasets.Dataset, path: str | os.PathLike) -> None:
    """``ds.save_to_disk`` into a temporary sibling folder, then swap it in: never a half-written folder."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        ds.save_to_disk(tmp)
        if os.path.isdir(path):
            old = tempfile.mkdtemp(prefix=".old-", dir=parent)
            os.replace(path, os.path.join(old, "x"))
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented JSON through a temporary file and ``os.replace``."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, default=str)
        f.write("\n")
    os.replace(tmp, path)
