"""The generation schema's table: rows of :func:`~lamini_lm.records.generation_features` as a ``Dataset``.

Reading inputs and writing outputs atomically is :mod:`lamini_lm.io`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lamini_lm.records import GENERATION_COLUMNS, generation_features

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

__all__ = ["failure_reason", "not_sent", "rows_to_dataset", "rows_to_table"]


def _columns(rows: list[dict[str, Any]]) -> dict[str, list]:
    columns = {c: [r.get(c) for r in rows] for c in GENERATION_COLUMNS}
    for c in ("seed_ids", "topics"):
        columns[c] = [list(v or []) for v in columns[c]]
    for c in ("prompt_tokens", "completion_tokens"):
        columns[c] = [int(v or 0) for v in columns[c]]
    columns["cost_usd"] = [float(v or 0.0) for v in columns["cost_usd"]]
    return columns


def rows_to_dataset(rows: list[dict[str, Any]]) -> datasets.Dataset:
    """A Dataset with exactly the columns and types of :func:`~lamini_lm.records.generation_features`."""
    import datasets

    return datasets.Dataset.from_dict(_columns(rows), features=generation_features())


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """The same rows as an Arrow table (what a streaming run writes chunk by chunk with ``ShardWriter``)."""
    import pyarrow as pa

    return pa.Table.from_pydict(_columns(rows), schema=generation_features().arrow_schema)


# Errors of rows this run did not send (a budget stop, an interruption, a dry run): not failures of the teacher.
_NOT_SENT = ("budget of ", "not answered (run interrupted)", "dry run: not sent")


def not_sent(error: str | None) -> bool:
    """Whether a row's ``error`` says its request was never sent (budget reached, interrupted, dry run)."""
    return bool(error) and error.startswith(_NOT_SENT)


def failure_reason(error: str) -> str:
    """A short reason to count failures by: ``"HTTP 500"`` for ``"HTTP 500: internal error after 3 attempts"``."""
    if error.startswith("budget of "):
        return "budget reached"
    head = error.split(":", 1)[0].strip()
    return head[:60] or "unknown"
