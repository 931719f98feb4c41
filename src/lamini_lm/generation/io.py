"""The generation schema's table: rows of :func:`~lamini_lm.records.generation_features` as a ``Dataset``.

Reading inputs and writing outputs atomically is :mod:`lamini_lm.io`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lamini_lm.records import GENERATION_COLUMNS, generation_features

if TYPE_CHECKING:
    import datasets

__all__ = ["rows_to_dataset"]


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
