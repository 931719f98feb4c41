"""``--engine ray``: the dedup and decontamination steps as Ray Data jobs, with the local engine's decisions.

The cluster is the one ``RAY_ADDRESS`` names (``ray.init()`` reads it), else a local Ray started on this machine.
Nothing here schedules work by hand: every step is a Ray Data operation, and Ray spills its object store to disk.

dedup (:func:`ray_dedup`):

1. read the input (``read_json`` / ``read_parquet``) with order preserved and a ``monotonically_increasing_id``
   row id, and sign each batch with the local engine's own function (exact-key hash, ROUGE token hashes, LSH band
   keys: :func:`lamini_lm.quality.dedup._signatures`);
2. exact: a shuffle (``groupby`` on a hash of the key) gives each row the first row with its key;
3. near: each row's 32 band keys become 32 rows ``(bucket, row)``, shuffled by ``groupby``; in a bucket a row is
   paired with the ``max_bucket`` rows before it, as locally, and distinct pairs are counted by another ``groupby``;
4. ROUGE-L: the pairs that can still pass are scored in ``map_batches`` against the candidate rows' tokens
   (broadcast with ``ray.put``); the keep decision is the sequential rule over the sorted pairs
   (:func:`lamini_lm.quality.dedup.rouge_walk`), on the driver, over precomputed scores: the same walk as locally;
5. the kept rows are written with ``write_parquet`` and renamed ``data/train-XXXXX-of-YYYYY.parquet`` in row order.

decontamination (:func:`ray_decontaminate`): the n-gram index is built once and broadcast; ``map_batches`` computes
each row's task mask, flagged rows are collected for the report, the others written as parquet shards.

Inputs may be local paths or any URL pyarrow/fsspec opens (``s3://``, ``hf://``: not tested here); the output folder
is local (the manifest is written there).
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from lamini_lm.artifacts import StepReport
from lamini_lm.errors import UsageError
from lamini_lm.quality.dedup import (
    DedupConfig,
    DedupResult,
    _signatures,
    dedup_report,
    length_bound,
    quoted_rows,
    rouge_walk,
)
from lamini_lm.quality.text import _mix64, rouge_l_many

__all__ = ["init_ray", "ray_decontaminate", "ray_dedup", "read_rows"]

logger = logging.getLogger(__name__)
ROW = "_lamini_row"


def init_ray():
    """``ray`` with Ray Data set to preserve row order; connects to ``RAY_ADDRESS`` or starts a local Ray."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise UsageError('--engine ray: Ray is not installed; pip install "lamini-lm[ray]"') from None
    if not ray.is_initialized():
        ray.init(logging_level=logging.WARNING, include_dashboard=False)
    if not logging.getLogger("lamini_lm").isEnabledFor(logging.DEBUG):  # Ray Data's plan lines only with -v
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    return ray


def read_rows(source: str, columns: list[str] | None = None):
    """A Ray dataset of the input's rows, in order, with a row id column (increasing in row order).

    The ids come from ``monotonically_increasing_id`` and depend on the plan that runs them: materialise the
    dataset before deriving several datasets from it.
    """
    ray = init_ray()
    from ray.data.expressions import monotonically_increasing_id

    from lamini_lm.io import _files

    if "://" in source:  # URLs go to Ray's readers as they are (fsspec/pyarrow file systems)
        ds = ray.data.read_json(source, lines=True) if source.endswith((".jsonl", ".json")) else None
        ds = ds if ds is not None else ray.data.read_parquet(source, columns=columns)
    else:
        fmt, files = _files(Path(source))
        paths = [str(f) for f in files]
        if fmt == "parquet":
            ds = ray.data.read_parquet(paths, columns=columns)
        elif fmt == "json":
            ds = ray.data.read_json(paths, lines=True)
        else:  # save_to_disk folders and CSV: read here in batches, handed to Ray
            import pyarrow as pa

            from lamini_lm.io import iter_batches

            ds = ray.data.from_arrow([pa.Table.from_batches([b]) for b in iter_batches(source, columns)])
    if columns is not None:
        ds = ds.select_columns(columns)
    return ds.with_column(ROW, monotonically_increasing_id())


def _sign(batch, column: str, params: dict[str, Any]):
    import pyarrow as pa

    rows = batch.column(ROW).to_numpy()
    sig = _signatures(batch.column(column).combine_chunks(), params, int(rows[0]) if len(rows) else 0)
    out = {ROW: pa.array(rows)}
    if "exact" in sig:
        out["exact"] = pa.array(sig["exact"])
        out["exact_part"] = pa.array((sig["exact"] % np.uint64(params["partitions"])).astype(np.int64))
    if "keys" in sig:
        offsets = np.zeros(len(rows) + 1, dtype=np.int32)
        np.cumsum(sig["lengths"], out=offsets[1:])
        out["tokens"] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(sig["tokens"]))
        out["length"] = pa.array(sig["lengths"])
        # bands x rows -> one column of bucket ids per band (band and key mixed: buckets of different bands differ)
        keys = sig["keys"]
        with np.errstate(over="ignore"):
            buckets = _mix64(keys ^ (np.arange(len(keys), dtype=np.uint64)[:, None] * np.uint64(0x9E3779B97F4A7C15)))
        out["buckets"] = pa.FixedSizeListArray.from_arrays(pa.array(buckets.T.reshape(-1)), len(keys))
    return pa.table(out)


def _explode(batch, partitions: int):
    import pyarrow as pa
    import pyarrow.compute as pc

    buckets = batch.column("buckets").combine_chunks()
    width = buckets.type.list_size
    flat = pc.list_flatten(buckets).to_numpy()
    rows = np.repeat(batch.column(ROW).to_numpy(), width)
    return pa.table({"bucket": flat, ROW: rows, "part": (flat % np.uint64(partitions)).astype(np.int64)})


def _exact_group(group):
    """Rows of one exact-hash partition -> (row, first row with the same hash) for the duplicates."""
    import pyarrow as pa

    h, rows = group.column("exact").to_numpy(), group.column(ROW).to_numpy()
    order = np.lexsort((rows, h))
    h, rows = h[order], rows[order]
    start = np.r_[True, h[1:] != h[:-1]]
    first = rows[np.maximum.accumulate(np.where(start, np.arange(len(h)), 0))]
    dup = ~start
    return pa.table({ROW: rows[dup], "first": first[dup]})


def _bucket_pairs(group, max_bucket: int):
    """Rows of one bucket partition -> candidate pairs (i < j): a row with the max_bucket before it in its bucket."""
    import pyarrow as pa

    b, rows = group.column("bucket").to_numpy(), group.column(ROW).to_numpy()
    order = np.lexsort((rows, b))
    b, rows = b[order], rows[order]
    n = len(b)
    idx = np.flatnonzero(b[:-1] == b[1:])
    first, second = [], []
    d = 1
    while len(idx) and d <= max_bucket:
        first.append(rows[idx])
        second.append(rows[idx + d])
        d += 1
        idx = idx[idx + d < n]
        idx = idx[b[idx + d] == b[idx]]
    i = np.concatenate(first) if first else np.zeros(0, dtype=np.int64)
    j = np.concatenate(second) if second else np.zeros(0, dtype=np.int64)
    return pa.table({"i": i, "j": j})


def _score(batch, tokens_ref, threshold: float):
    import pyarrow as pa
    import ray

    rows, tokens, offsets = ray.get(tokens_ref)
    i, j = batch.column("i").to_numpy(), batch.column("j").to_numpy()
    pi, pj = np.searchsorted(rows, i), np.searchsorted(rows, j)
    scores = rouge_l_many(tokens, offsets, pi, pj)  # float64: compared with the threshold exactly as locally
    return pa.table({"i": i, "j": j, "score": scores})


def _numpy(ds, *columns: str) -> list[np.ndarray]:
    table = ds.select_columns(list(columns)).to_arrow_refs()
    import pyarrow as pa
    import ray

    tables = [t for t in ray.get(table) if t.num_rows]
    if not tables:
        return [np.zeros(0, dtype=np.int64) for _ in columns]
    t = pa.concat_tables(tables)
    return [t.column(c).to_numpy() for c in columns]


def _part_order(path: Path) -> tuple[int, ...]:
    """Ray names parquet parts ``{uuid}_{task:06}-{k}.parquet``: task, then k, is row order (order preserved)."""
    return tuple(int(x) for x in re.findall(r"\d+", path.stem.split("_", 1)[-1]))


def _write(ds, folder: Path, schema_source: str) -> None:
    data = folder / "data"
    ds.write_parquet(str(data), min_rows_per_file=100_000)
    parts = sorted(data.glob("*.parquet"), key=_part_order) if data.exists() else []
    if not parts:  # no row kept: an empty shard with the input's columns
        from lamini_lm.io import ShardWriter, iter_batches

        schema = None
        for b in iter_batches(schema_source, batch_rows=1):
            schema = b.schema
            break
        ShardWriter(folder).close(schema)
        return
    for k, p in enumerate(parts):
        p.rename(data / f"train-{k:05d}-of-{len(parts):05d}.parquet")


def ray_dedup(source: str, folder: Path, config: DedupConfig) -> tuple[StepReport, int]:
    """``lamini-lm dedup --engine ray``: the report and the kept row count; the kept rows go to ``folder/data``."""
    import pyarrow as pa

    ray = init_ray()
    start = time.perf_counter()
    cfg = config
    # materialised once: the row ids are computed in one execution (another plan could number the rows otherwise)
    rows_ds = read_rows(source).materialize()
    n_rows = rows_ds.count()
    partitions = max(2, min(256, n_rows * cfg.bands // 2_000_000))  # shuffle partitions: ~2M bucket rows each
    params = {k: getattr(cfg, k) for k in ("exact", "punctuation", "near", "ngram", "edges", "bands", "rows", "seed")}
    params["partitions"] = partitions
    sig = (
        rows_ds.select_columns([cfg.column, ROW])
        .map_batches(
            _sign,
            batch_format="pyarrow",
            batch_size=cfg.batch_rows,
            fn_kwargs={"column": cfg.column, "params": params},
        )
        .materialize()
    )
    (ids,) = _numpy(sig, ROW)
    if not (np.diff(ids) > 0).all():
        raise RuntimeError("Ray Data did not keep the row order (row ids are not increasing); nothing was written")
    n = len(ids)
    position = {"ids": ids}

    def pos(x: np.ndarray) -> np.ndarray:
        return np.searchsorted(position["ids"], x)

    stats: dict[str, Any] = {"rows_in": n, "seconds": {"read_and_sign": round(time.perf_counter() - start, 3)}}
    code = np.zeros(n, dtype=np.int8)
    dup_of = np.full(n, -1, dtype=np.int64)
    score = np.zeros(n, dtype=np.float32)
    t1 = time.perf_counter()
    if cfg.exact and n:
        dups = (
            sig.select_columns(["exact", "exact_part", ROW])
            .groupby("exact_part", num_partitions=partitions)
            .map_groups(_exact_group, batch_format="pyarrow")
        )
        r, f = _numpy(dups, ROW, "first")
        code[pos(r)], dup_of[pos(r)], score[pos(r)] = 1, pos(f), 1.0
    stats["seconds"]["exact"] = round(time.perf_counter() - t1, 3)
    if cfg.near and n > 1:
        t2 = time.perf_counter()
        exploded = sig.select_columns(["buckets", ROW]).map_batches(
            _explode, batch_format="pyarrow", fn_kwargs={"partitions": partitions}
        )
        pairs_ds = exploded.groupby("part", num_partitions=partitions).map_groups(
            _bucket_pairs, batch_format="pyarrow", fn_kwargs={"max_bucket": cfg.max_bucket}
        )
        distinct = pairs_ds.groupby(["i", "j"], num_partitions=partitions).count()
        i, j = _numpy(distinct, "i", "j")
        pairs = np.stack([pos(i), pos(j)], axis=1).astype(np.int64)
        pairs = pairs[np.lexsort((pairs[:, 0], pairs[:, 1]))]
        t3 = time.perf_counter()
        (lengths,) = _numpy(sig, "length")
        alive = dup_of < 0
        useful = pairs[alive[pairs[:, 0]] & alive[pairs[:, 1]] & length_bound(pairs, lengths.astype(np.int64),
                                                                               cfg.threshold)]  # fmt: skip
        need = ids[np.unique(useful.ravel())]
        need_ref = ray.put(need)
        cand = sig.select_columns([ROW, "tokens"]).map_batches(
            lambda b, ref: b.filter(pa.array(np.isin(b.column(ROW).to_numpy(), ray.get(ref)))),
            batch_format="pyarrow",
            fn_kwargs={"ref": need_ref},
        )
        tables = [t for t in ray.get(cand.to_arrow_refs()) if t.num_rows]
        table = pa.concat_tables(tables) if tables else None
        if table is not None and len(useful):
            flat = table.column("tokens").combine_chunks()
            tok_rows = table.column(ROW).to_numpy()
            order = np.argsort(tok_rows)
            lists = flat.take(pa.array(order))
            offsets = lists.offsets.to_numpy().astype(np.int64) - int(lists.offsets[0].as_py())
            tokens = lists.flatten().to_numpy()
            tokens_ref = ray.put((tok_rows[order], tokens, offsets))
            scored = ray.data.from_arrow(pa.table({"i": ids[useful[:, 0]], "j": ids[useful[:, 1]]})).map_batches(
                _score, batch_format="pyarrow", fn_kwargs={"tokens_ref": tokens_ref, "threshold": cfg.threshold}
            )
            si, sj, ss = _numpy(scored, "i", "j", "score")
            lookup = dict(zip((pos(si) * n + pos(sj)).tolist(), ss.tolist()))
        else:
            lookup = {}

        def passes(a: int, b: int) -> float | None:
            s = lookup[a * n + b]
            return s if s > cfg.threshold else None

        near_of, near_score, checked = rouge_walk(useful, alive, passes)
        hit = near_of >= 0
        code[hit], dup_of[hit], score[hit] = 2, near_of[hit], near_score[hit]
        stats["seconds"].update(lsh=round(t3 - t2, 3), rouge=round(time.perf_counter() - t3, 3))
        stats.update(candidates=len(pairs), rouge_checked=checked, spilled=False, engine="ray",
                     partitions=partitions)  # fmt: skip
    res = DedupResult(code, dup_of, score, stats)
    t_write = time.perf_counter()
    # report inputs: quoted texts, removed rows per source
    quoted = ids[quoted_rows(res, cfg.examples)]
    removed = ids[~res.keep]
    removed_ref = ray.put(removed)
    cols = [cfg.column, ROW] + (["instruction_source"] if "instruction_source" in rows_ds.columns() else [])
    picked = rows_ds.select_columns(cols).map_batches(
        lambda b, ref: b.filter(pa.array(np.isin(b.column(ROW).to_numpy(), ray.get(ref)))),
        batch_format="pyarrow",
        fn_kwargs={"ref": ray.put(np.union1d(removed if "instruction_source" in cols else quoted, quoted))},
    )
    texts: dict[int, str] = {}
    counts: dict[str, Counter] = {}
    quoted_set = set(pos(quoted).tolist())
    for t in ray.get(picked.to_arrow_refs()):
        r = pos(t.column(ROW).to_numpy())
        col = t.column(cfg.column).to_pylist()
        src = t.column("instruction_source").to_pylist() if "instruction_source" in cols else None
        for k, p in enumerate(r.tolist()):
            if p in quoted_set:
                texts[p] = col[k]
            if src is not None and code[p]:
                counts.setdefault(("", "exact", "rouge")[code[p]], Counter())[src[k]] += 1
    kept = rows_ds.map_batches(
        lambda b, ref: b.filter(pa.array(~np.isin(b.column(ROW).to_numpy(), ray.get(ref)))).drop_columns([ROW]),
        batch_format="pyarrow",
        fn_kwargs={"ref": removed_ref},
    )
    _write(kept, folder, source)
    res.stats["seconds"]["write"] = round(time.perf_counter() - t_write, 3)
    report = dedup_report(res, cfg, texts, {k: dict(v) for k, v in counts.items()}, time.perf_counter() - start)
    return report, int(np.count_nonzero(res.keep))


def _masks(batch, index_ref, columns: list[str]):
    import pyarrow as pa
    import ray

    from lamini_lm.quality.decontaminate import scan

    index = ray.get(index_ref)
    total, per_column = scan(index, {c: batch.column(c).to_pylist() for c in columns})
    out = batch.append_column("_lamini_mask", pa.array(total))
    for c in columns:
        out = out.append_column(f"_lamini_mask_{c}", pa.array(per_column[c]))
    return out


def ray_decontaminate(source: str, folder: Path, config, index, t_index: float) -> tuple[StepReport, int]:
    """``lamini-lm decontaminate --engine ray``: the report and the written row count."""
    import pyarrow as pa

    from lamini_lm.quality.decontaminate import DecontaminationTally, task_names

    ray = init_ray()
    t1 = time.perf_counter()
    columns = list(config.columns)
    rows_ds = read_rows(source)
    masked = rows_ds.map_batches(
        _masks, batch_format="pyarrow", batch_size=config.batch_rows,
        fn_kwargs={"index_ref": ray.put(index), "columns": columns},
    ).materialize()  # fmt: skip
    (ids,) = _numpy(masked, ROW)
    mask_cols = ["_lamini_mask", *(f"_lamini_mask_{c}" for c in columns)]
    flagged = masked.map_batches(
        lambda b: b.filter(pa.array(b.column("_lamini_mask").to_numpy() != 0)), batch_format="pyarrow"
    )
    tally = DecontaminationTally(index, columns, config.action, config.examples)
    tables = [t for t in ray.get(flagged.to_arrow_refs()) if t.num_rows]
    if tables:
        t = pa.concat_tables(tables)
        t = t.take(pa.array(np.argsort(t.column(ROW).to_numpy(), kind="stable")))
        p = np.searchsorted(ids, t.column(ROW).to_numpy())
        names = t.column_names
        sources = t.column("instruction_source").to_pylist() if "instruction_source" in names else None
        # the tally counts flagged rows only; row numbers are positions in the input
        tally_rows = {c: t.column(f"_lamini_mask_{c}").to_numpy() for c in columns}
        first_col = t.column(columns[0]).to_pylist()
        total = t.column("_lamini_mask").to_numpy()
        for k in range(len(p)):
            tally.add(first_col[k : k + 1], total[k : k + 1], {c: m[k : k + 1] for c, m in tally_rows.items()},
                      sources[k : k + 1] if sources else None, int(p[k]))  # fmt: skip
    tally.rows_in = len(ids)

    tasks = SimpleNamespace(tasks=list(index.tasks))  # what task_names needs, without the index's arrays

    def finish(b, action: str):
        total = b.column("_lamini_mask").to_numpy()
        out = b.drop_columns([ROW, *mask_cols])
        if action == "tag":
            return out.append_column("contaminated", pa.array(task_names(tasks, total), pa.list_(pa.string())))
        return out.filter(pa.array(total == 0))

    _write(masked.map_batches(finish, batch_format="pyarrow", fn_kwargs={"action": config.action}), folder, source)
    phases = {"index": round(t_index, 3), "scan_and_write": round(time.perf_counter() - t1, 3)}
    report = tally.report(t_index + time.perf_counter() - t1, phases)
    return report, int(report.rows_out)
