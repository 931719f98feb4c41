"""The shared teacher cache seen from outside a run: what it holds by model, an export of its answers, pruning.

The cache is the exactly-once store (:mod:`lamini_lm.generation.store`) every run shares: by default
``~/.cache/lamini_lm/teacher.sqlite`` (``$LAMINI_LM_CACHE`` or ``--store`` move it). It holds answers, their token
usage and cost, never a key or a secret (keys are read from the environment per request and never stored).

Example:
    >>> from lamini_lm.generation.cache import cache_summary
    >>> for row in cache_summary("teacher.sqlite"):  # doctest: +SKIP
    ...     print(row["model"], row["requests"], row["cost_usd"])
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lamini_lm.errors import UsageError
from lamini_lm.generation.store import Store

__all__ = ["cache_summary", "export_answers", "format_summary", "prune_cache"]


def _open(store: str | os.PathLike) -> Store:
    if not Path(store).is_file():
        raise UsageError(f"--store {store}: no teacher cache there (nothing has been generated with it yet)")
    return Store(store)


def cache_summary(store: str | os.PathLike) -> list[dict[str, Any]]:
    """One row per model: ``model, requests, failed, prompt_tokens, completion_tokens, cost_usd, oldest, newest``.

    ``model`` is the model that answered (as the server named it); stored failures without one are ``"-"``.
    """
    by_model: dict[str, dict[str, Any]] = {}
    with _open(store) as st:
        for _key, r, created in st.rows():
            row = by_model.setdefault(
                r.model or "-",
                {
                    "model": r.model or "-",
                    "requests": 0,
                    "failed": 0,
                    "prompt_tokens": 0,
                    "completion_tokens": 0,
                    "cost_usd": 0.0,
                    "oldest": created,
                    "newest": created,
                },
            )
            row["requests"] += 1
            row["failed"] += not r.ok
            row["prompt_tokens"] += r.usage.prompt_tokens
            row["completion_tokens"] += r.usage.completion_tokens
            row["cost_usd"] += r.cost_usd or 0.0
            row["oldest"], row["newest"] = min(row["oldest"], created), max(row["newest"], created)
    return sorted(by_model.values(), key=lambda r: (-r["cost_usd"], -r["requests"], r["model"]))


def format_summary(rows: Sequence[dict[str, Any]]) -> str:
    """The summary as a short text table, with a total line when there are several models."""
    header = ("model", "requests", "failed", "prompt tok", "completion tok", "USD")
    lines = [
        (r["model"], f"{r['requests']:,}", f"{r['failed']:,}", f"{r['prompt_tokens']:,}")
        + (f"{r['completion_tokens']:,}", f"{r['cost_usd']:,.4f}")
        for r in rows
    ]
    if len(rows) > 1:
        total = {k: sum(r[k] for r in rows) for k in ("requests", "failed", "prompt_tokens", "completion_tokens")}
        lines.append(
            ("total", f"{total['requests']:,}", f"{total['failed']:,}", f"{total['prompt_tokens']:,}")
            + (f"{total['completion_tokens']:,}", f"{sum(r['cost_usd'] for r in rows):,.4f}")
        )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*row) for row in [header, *lines])


def _selected(st: Store, older_than_days: float | None, model: str | None) -> list[str]:
    cutoff = None if older_than_days is None else time.time() - older_than_days * 86400
    return [
        key
        for key, r, created in st.rows()
        if (cutoff is None or created < cutoff) and (model is None or (r.model or "-") == model)
    ]


def export_answers(
    store: str | os.PathLike,
    path: str | os.PathLike,
    *,
    older_than_days: float | None = None,
    model: str | None = None,
) -> int:
    """Write the stored answers to the JSONL file ``path`` (one ``{key, created, text, error, model, usage, ...}`` a
    line; the optional filters as in :func:`prune_cache`); returns how many. Written atomically."""
    from lamini_lm.io import write_text_atomic

    with _open(store) as st:
        keys = set(_selected(st, older_than_days, model))
        lines = [
            json.dumps({"key": key, "created": created, **r.to_dict()}, ensure_ascii=False)
            for key, r, created in st.rows()
            if key in keys
        ]
    write_text_atomic(path, "".join(line + "\n" for line in lines))
    return len(lines)


def prune_cache(store: str | os.PathLike, *, older_than_days: float | None = None, model: str | None = None) -> int:
    """Remove the answers older than ``older_than_days`` and/or answered by ``model``; returns how many.

    At least one filter is needed (removing everything is deleting the file).
    """
    if older_than_days is None and model is None:
        raise UsageError("--prune needs --older_than_days N and/or --model NAME (delete the file to clear it all)")
    with _open(store) as st:
        return st.delete(_selected(st, older_than_days, model))
