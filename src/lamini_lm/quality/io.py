"""Column access for the quality steps (reading and writing tables is :mod:`lamini_lm.io`'s).

Example:
    >>> import datasets
    >>> from lamini_lm.quality.io import column
    >>> column(datasets.Dataset.from_dict({"instruction": ["Add 2 and 3."]}), "instruction")
    ['Add 2 and 3.']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lamini_lm.errors import DataError

if TYPE_CHECKING:
    import datasets

__all__ = ["column"]


def column(ds: datasets.Dataset, name: str) -> list:
    """One column as a Python list (``ds[name][:]``: datasets 5 returns a lazy ``Column`` for ``ds[name]``).

    A missing column is a :class:`~lamini_lm.errors.DataError` naming it and the columns there are.
    """
    if name not in ds.column_names:
        raise DataError(f"the dataset has no {name!r} column (its columns: {', '.join(ds.column_names)})")
    return ds[name][:]
