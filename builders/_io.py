"""What every builder here shares: reading local or Hub files row by row, errors that name file, line and field,
per-subset sampling, and the dataset card templates shipped next to the builders.

Files are opened through ``datasets``' ``xopen``, so the same code reads a local path, an ``hf://`` path or an
``https://`` URL, and works unchanged under ``as_streaming_dataset()``.
"""

from __future__ import annotations

import glob
import hashlib
import io
import logging
import os
import random
from collections.abc import Iterable, Iterator, Sequence
from importlib import resources
from typing import Any

import lamini_lm
from lamini_lm.errors import DataFileError
from lamini_lm.io import SUPPORTED_EXTENSIONS, field_value, iter_records, open_source

logger = logging.getLogger(__name__)

__all__ = [
    "DataFileError",
    "SubsetSampler",
    "dataset_card",
    "field_value",
    "hub_files",
    "inputs_fingerprint",
    "iter_records",
    "local_files",
    "open_source",
    "source_files",
]


def inputs_fingerprint(paths: Sequence[str], extra: str = "") -> str:
    """A hash of the inputs' names, sizes and modification times (and a saved dataset's ``state.json``, which holds
    its fingerprint): cheap for millions of rows, and different as soon as a generation run writes again."""
    h = hashlib.sha256(f"{lamini_lm.__version__}|{extra}".encode())
    for path in paths:
        path = os.path.abspath(path)
        h.update(path.encode())
        files = [path] if os.path.isfile(path) else sorted(glob.glob(os.path.join(path, "**", "*"), recursive=True))
        if not files:
            raise FileNotFoundError(f"input not found or empty: {path}")
        for f in files:
            if os.path.isfile(f):
                st = os.stat(f)
                h.update(f"{os.path.relpath(f, path)}:{st.st_size}:{st.st_mtime_ns}".encode())
                if os.path.basename(f) == "state.json":
                    with open(f, "rb") as fh:
                        h.update(fh.read())
    return h.hexdigest()


def local_files(data_files: Any = None, data_dir: str | None = None, split: str = "train") -> list[str]:
    """The local files a user gave: ``data_files`` (a path, a list, a dict by split or a resolved
    ``DataFilesDict``) or every supported file under ``data_dir``. Empty when neither was given."""
    if data_files:
        if isinstance(data_files, dict):  # DataFilesDict is a dict of split -> list of resolved paths
            data_files = data_files.get(split) or [f for files in data_files.values() for f in files]
        if isinstance(data_files, (str, os.PathLike)):
            data_files = [data_files]
        return [str(f) for f in data_files]
    if data_dir:
        found = sorted(
            p
            for p in glob.glob(os.path.join(data_dir, "**", "*"), recursive=True)
            if p.lower().removesuffix(".gz").endswith(SUPPORTED_EXTENSIONS) or p.endswith(".sql.gz")
        )
        if not found:
            raise FileNotFoundError(f"no {'/'.join(SUPPORTED_EXTENSIONS)} files under data_dir={data_dir}")
        return found
    return []


def hub_files(repo_id: str, pattern: str, revision: str | None = None) -> list[str]:
    """``hf://`` paths of the files of a Hub dataset repo matching ``pattern`` (e.g. ``"data/*.parquet"``)."""
    from huggingface_hub import HfFileSystem

    fs = HfFileSystem()
    rev = f"@{revision}" if revision else ""
    paths = sorted(fs.glob(f"datasets/{repo_id}{rev}/{pattern}"))
    if not paths:
        raise FileNotFoundError(f"no files matching {pattern!r} in the Hub dataset {repo_id}")
    return [f"hf://{p}" for p in paths]


def source_files(config, dl_manager, default: Iterable[str] | None = None) -> list[str]:
    """The files a builder reads: the user's ``data_files``/``data_dir`` if given, else ``default`` (URLs or
    ``hf://`` paths) through the download manager, which downloads them, or hands them back as they are when
    streaming."""
    files = local_files(config.data_files, config.data_dir)
    if files:
        return files
    urls = list(default or [])
    if not urls:
        raise ValueError("no data_files or data_dir given and no default source to download")
    logger.info("reading %d default source file(s), e.g. %s", len(urls), urls[0])
    return list(dl_manager.download(urls))


class SubsetSampler:
    """Keep at most ``k`` rows per subset by reservoir sampling: one pass, memory bounded by ``k`` x subsets, and
    the same rows for the same ``seed`` and input order. ``k=None`` keeps every row (nothing is buffered then:
    use :meth:`passthrough`)."""

    def __init__(self, k: int, seed: int = 42):
        if k < 1:
            raise ValueError(f"per-subset sample size must be >= 1, got {k}")
        self.k, self.seed = k, seed
        self._seen: dict[str, int] = {}
        self._kept: dict[str, list[Any]] = {}
        self._rng: dict[str, random.Random] = {}

    def add(self, subset: str, item: Any) -> None:
        n = self._seen.get(subset, 0)
        if n == 0:
            self._kept[subset] = []
            self._rng[subset] = random.Random(f"{self.seed}:{subset}")
        self._seen[subset] = n + 1
        kept = self._kept[subset]
        if len(kept) < self.k:
            kept.append(item)
        else:
            j = self._rng[subset].randrange(n + 1)
            if j < self.k:
                kept[j] = item

    def items(self) -> Iterator[tuple[str, Any]]:
        """The kept rows, subset by subset (sorted by name), each subset in input order of its kept rows."""
        for subset in sorted(self._kept):
            for item in self._kept[subset]:
                yield subset, item


def dataset_card(name: str, card_data: dict[str, Any] | None = None, **values: Any):
    """Render the card template ``builders/<name>.md`` into a ``huggingface_hub.DatasetCard``.

    Example:
        >>> from lamini_lm.builders import dataset_card
        >>> card = dataset_card("instructions", num_rows=1000)  # doctest: +SKIP
        >>> card.save("README.md")  # doctest: +SKIP
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    template = resources.files("lamini_lm.builders").joinpath(f"{name}.md").read_text(encoding="utf-8")
    return DatasetCard.from_template(DatasetCardData(**(card_data or {})), template_str=template, **values)


def card_description(name: str) -> str:
    """The prose of a builder's card template (no YAML header, no Jinja lines), for ``DatasetInfo.description``."""
    text = resources.files("lamini_lm.builders").joinpath(f"{name}.md").read_text(encoding="utf-8")
    if text.startswith("---"):
        text = text.split("---", 2)[2]
    lines = [ln for ln in io.StringIO(text) if "{{" not in ln and "{%" not in ln]
    return "".join(lines).strip()
