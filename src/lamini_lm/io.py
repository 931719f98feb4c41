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

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets

__all__ = ["load_table", "replace_dir", "save_dataset", "write_json", "write_text_atomic"]


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
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if "train" not in loaded and len(loaded) != 1:
                    raise ValueError(
                        f"{path}: a DatasetDict with splits {list(loaded)} and no 'train'; pass one split"
                    )
                loaded = loaded["train"] if "train" in loaded else next(iter(loaded.values()))
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
