"""Deduplication in three passes, each saying what it removed and why.

1. **exact**: rows whose normalised text (NFKC, lower-cased, white space collapsed, edge punctuation dropped; see
   :func:`~lamini_lm.quality.text.normalize`) equals an earlier row's.
2. **near**: MinHash LSH over word bigrams proposes candidate pairs (:mod:`lamini_lm.quality.minhash`).
3. **rouge**: Self-Instruct's rule, checked only on the candidates: in row order, a row is dropped when its ROUGE-L
   F-measure (``rouge_score`` tokens, no stemming) with an *earlier kept* row exceeds ``threshold`` (0.7). The first
   of a group is kept, so the result is the O(N^2) rule's, restricted to the pairs LSH proposes.

Memory is bounded: rows are read in Arrow batches (:func:`dedup_batches`), and only what the passes need is kept per
row (a 64-bit hash of the exact key, the LSH band keys, the ROUGE tokens as 64-bit token hashes); the band keys and
tokens go to files (one band at a time is read back) once they pass half of ``max_memory``. Batches are signed on
``num_proc`` processes. The same decisions run on Ray Data with ``engine="ray"`` (:mod:`lamini_lm.quality.ray_engine`).

Example:
    >>> import datasets
    >>> from lamini_lm.quality import dedup
    >>> ds = datasets.Dataset.from_dict({"instruction": [
    ...     "Write a poem about the sea and the wind at night.",
    ...     "write a poem about the sea and the wind   at night",
    ...     "Write a poem about the sea and the wind at dawn.",
    ...     "Add 2 and 3."]})
    >>> kept, report = dedup(ds)
    >>> kept["instruction"][:], report.removed
    (['Write a poem about the sea and the wind at night.', 'Add 2 and 3.'], {'exact': 1, 'rouge': 1})
    >>> report.summary()
    'dedup: 4 rows in, 2 out (exact 1, rouge 1)'

"""

from __future__ import annotations

import logging
import multiprocessing
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lamini_lm.artifacts import StepReport
from lamini_lm.config import check_choice, check_range
from lamini_lm.io import column, parse_bytes
from lamini_lm.quality.minhash import band_keys, band_pair_codes
from lamini_lm.quality.text import exact_key_hashes, forked_map, rouge_l_many, tokenize_texts

if TYPE_CHECKING:
    import datasets

__all__ = ["DedupConfig", "DedupResult", "dedup", "dedup_batches", "dedup_report", "dedup_texts"]

logger = logging.getLogger(__name__)

REASONS = ("", "exact", "rouge")


@dataclass
class DedupConfig:
    """Settings of :func:`dedup` (also the ``lamini-lm dedup`` flags)."""

    column: str = field(default="instruction", metadata={"help": "text column to deduplicate"})
    exact: bool = field(default=True, metadata={"help": "pass 1: drop rows whose normalised text repeats"})
    punctuation: str = field(
        default="edges",
        metadata={"help": "exact key: 'edges' drops punctuation at both ends, 'strip' drops all, 'keep' keeps it"},
    )
    near: bool = field(default=True, metadata={"help": "passes 2 and 3: MinHash LSH candidates, ROUGE-L check"})
    threshold: float = field(
        default=0.7, metadata={"help": "drop a row whose ROUGE-L with an earlier kept row exceeds it"}
    )
    ngram: int = field(default=2, metadata={"help": "MinHash shingle: word n-gram length"})
    edges: bool = field(default=True, metadata={"help": "also shingle a row's first and last word (short rows)"})
    bands: int = field(default=32, metadata={"help": "LSH bands (num_perm = bands * rows)"})
    rows: int = field(default=4, metadata={"help": "MinHash values per LSH band"})
    max_bucket: int = field(default=64, metadata={"help": "pair a row with at most this many earlier bucket mates"})
    seed: int = field(default=42, metadata={"help": "seed of the MinHash permutations"})
    num_proc: int = field(default=2, metadata={"help": "processes signing batches (local engine)"})
    examples: int = field(default=20, metadata={"help": "removed rows quoted per pass in the report"})
    max_memory: str = field(
        default="4GB", metadata={"help": "memory budget: band keys and tokens spill to disk past half of it"}
    )
    batch_rows: int = field(default=100_000, metadata={"help": "rows read and signed per Arrow batch"})
    engine: str = field(
        default="local", metadata={"help": "'local' (this machine) or 'ray' (Ray Data; RAY_ADDRESS or a local Ray)"}
    )

    def __post_init__(self):
        check_choice("punctuation", self.punctuation, ("edges", "strip", "keep"))
        check_choice("engine", self.engine, ("local", "ray"))
        check_range("threshold", self.threshold, 0, 1, low_open=True)
        for name in ("ngram", "bands", "rows", "max_bucket", "num_proc", "batch_rows"):
            check_range(name, getattr(self, name), 1)
        check_range("examples", self.examples, 0)
        from lamini_lm.errors import UsageError

        try:
            budget = parse_bytes(self.max_memory)
        except ValueError as e:
            raise UsageError(f"--max_memory: {e}") from None
        if budget < 10**6:
            raise UsageError(f"--max_memory: {self.max_memory!r} is under 1MB; give e.g. 4GB")

    @property
    def max_memory_bytes(self) -> int:
        return parse_bytes(self.max_memory)


@dataclass
class DedupResult:
    """Per-row outcome: ``reason[i]`` is "", "exact" or "rouge" (``code[i]`` 0, 1, 2); ``dup_of[i]`` the kept row
    that made row ``i`` a duplicate (-1 if kept); ``score[i]`` its ROUGE-L (1.0 for exact)."""

    code: np.ndarray  # int8
    dup_of: np.ndarray  # int64
    score: np.ndarray  # float32
    stats: dict[str, Any]

    @property
    def keep(self) -> np.ndarray:
        return self.dup_of < 0

    @property
    def reason(self) -> np.ndarray:
        return np.array(REASONS, dtype="<U5")[self.code]


def _signatures(texts: Any, params: dict[str, Any], row_offset: int) -> dict[str, np.ndarray]:
    """What the passes keep of one batch: exact-key hashes, ROUGE token hashes (flat) and lengths, band keys."""
    out: dict[str, np.ndarray] = {}
    if params["exact"]:
        out["exact"] = exact_key_hashes(texts, params["punctuation"])
    if params["near"]:
        tok = tokenize_texts(texts)
        out["tokens"] = tok.token_hash[tok.ids]  # 64-bit token hashes: equal tokens, equal values, in any batch
        out["lengths"] = tok.lengths.astype(np.int32)
        out["keys"] = band_keys(tok, ngram=params["ngram"], edges=params["edges"], bands=params["bands"],
                                rows=params["rows"], seed=params["seed"], row_offset=row_offset)  # fmt: skip
    return out


def _signed(batches: Iterable[Any], cfg: DedupConfig) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """``(rows, signatures)`` of each batch, in order; on ``num_proc`` forked processes, a few batches in flight."""
    params = {k: getattr(cfg, k) for k in ("exact", "punctuation", "near", "ngram", "edges", "bands", "rows", "seed")}

    def numbered() -> Iterator[tuple[Any, int]]:
        offset = 0
        for texts in batches:
            yield texts, offset
            offset += len(texts)

    for (texts, _), sig in forked_map(_sign_batch, numbered(), cfg.num_proc, params):
        yield len(texts), sig


def _sign_batch(item: tuple[Any, int], params: dict[str, Any]) -> dict[str, np.ndarray]:
    return _signatures(item[0], params, item[1])


class _Store:
    """Arrays appended batch by batch: in memory until they pass ``budget`` bytes, then in files under ``folder``."""

    def __init__(self, budget: int, folder: str | Path | None = None):
        self.budget, self.bytes = budget, 0
        self._parent = folder
        self._dir: Path | None = None
        self.parts: dict[str, list[np.ndarray]] = {}
        self.files: dict[str, Any] = {}
        self.dtypes: dict[str, np.dtype] = {}

    @property
    def spilled(self) -> bool:
        return self._dir is not None

    def add(self, name: str, arr: np.ndarray) -> None:
        self.dtypes[name] = arr.dtype
        if self.spilled:
            self._file(name).write(np.ascontiguousarray(arr).tobytes())
            return
        self.parts.setdefault(name, []).append(arr)
        self.bytes += arr.nbytes
        if self.bytes > self.budget:
            self._dir = Path(tempfile.mkdtemp(prefix=".lamini-spill-", dir=self._parent))
            logger.info("dedup: %.2f GB of band keys and tokens: spilling to %s", self.bytes / 1e9, self._dir)
            for key, parts in self.parts.items():
                for p in parts:
                    self._file(key).write(np.ascontiguousarray(p).tobytes())
            self.parts.clear()

    def _file(self, name: str):
        if name not in self.files:
            self.files[name] = open(self._dir / f"{name}.bin", "ab")  # noqa: SIM115 (closed in close())
        return self.files[name]

    def get(self, name: str) -> np.ndarray:
        if name in self.files:
            self.files[name].flush()
            return np.fromfile(self._dir / f"{name}.bin", dtype=self.dtypes[name])
        parts = self.parts.get(name, [])
        return np.concatenate(parts) if parts else np.zeros(0, dtype=self.dtypes.get(name, np.uint64))

    def reader(self, name: str) -> Callable[[int, int], np.ndarray]:
        """``read(start, count)`` of a stored array, without loading all of it when it is in a file."""
        if name in self.files:
            self.files[name].flush()
            path, dtype = self._dir / f"{name}.bin", self.dtypes[name]
            return lambda start, count: np.fromfile(path, dtype=dtype, count=count, offset=start * dtype.itemsize)
        arr = self.get(name)
        return lambda start, count: arr[start : start + count]

    def drop(self, name: str) -> None:
        self.parts.pop(name, None)

    def close(self) -> None:
        for f in self.files.values():
            f.close()
        self.files.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)


_BANDS: dict[str, Any] = {}  # the store, read by forked band workers (no pickling of the keys)


def _one_band(band: int) -> tuple[np.ndarray, bool]:
    return band_pair_codes(_BANDS["store"].get(f"band{band}"), _BANDS["max_bucket"])


def _band_codes(store: _Store, cfg: DedupConfig) -> Iterator[tuple[np.ndarray, bool]]:
    """Candidate pair codes of each band, in band order: on ``num_proc`` forked processes, one band each at a time."""
    if cfg.num_proc > 1 and cfg.bands > 1 and "fork" in multiprocessing.get_all_start_methods():
        for f in store.files.values():
            f.flush()
        _BANDS.update(store=store, max_bucket=cfg.max_bucket)
        try:
            with multiprocessing.get_context("fork").Pool(cfg.num_proc) as pool:
                yield from pool.imap(_one_band, range(cfg.bands))
        finally:
            _BANDS.clear()
            for band in range(cfg.bands):
                store.drop(f"band{band}")
        return
    for band in range(cfg.bands):
        yield band_pair_codes(store.get(f"band{band}"), cfg.max_bucket)
        store.drop(f"band{band}")


def gather_rows(read: Callable[[int, int], np.ndarray], offsets: np.ndarray, rows: np.ndarray, chunk: int = 1 << 23):
    """The tokens of ``rows`` (sorted, unique) from a flat token array read by ``read``, in one sequential sweep.

    Returns ``(tokens, row_offsets)``: row ``rows[k]`` is ``tokens[row_offsets[k]:row_offsets[k + 1]]``.
    """
    starts, ends = offsets[rows], offsets[rows + 1]
    lens = ends - starts
    out_off = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lens, out=out_off[1:])
    out = np.empty(int(out_off[-1]), dtype=np.uint64)
    p = 0
    while p < len(rows):
        a = int(starts[p])
        q = max(p + 1, int(np.searchsorted(ends, a + chunk, side="right")))
        b = int(ends[q - 1])
        buf = read(a, b - a)
        idx = np.repeat(starts[p:q] - a - out_off[p:q], lens[p:q]) + np.arange(out_off[p], out_off[q])
        out[out_off[p] : out_off[q]] = buf[idx]
        p = q
    return out, out_off


def rouge_walk(
    pairs: np.ndarray,
    alive: np.ndarray,
    passes: Callable[[int, int], float | None] | np.ndarray,
    threshold: float | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Self-Instruct's rule over candidate ``pairs`` sorted by later row: drop ``j`` when a still-kept earlier ``i``
    has ``passes(i, j)`` (its ROUGE-L, or None when it is at most the threshold). Returns dup_of, score, checks.

    ``passes`` may instead be the ROUGE-L of every pair, precomputed (:func:`~lamini_lm.quality.text.rouge_l_many`),
    with ``threshold``: the walk is then the same, only the scores are looked up.
    """
    dup_of = np.full(len(alive), -1, dtype=np.int64)
    score = np.zeros(len(alive), dtype=np.float32)
    alive = alive.copy()
    checked = 0
    if isinstance(passes, np.ndarray):
        if threshold is None:
            raise ValueError("rouge_walk: precomputed scores need the threshold")
        # only the pairs over the threshold can drop a row; a pair between them is "checked" when both ends are
        # still alive at its turn, which the walk over the passing pairs alone cannot tell: count those vectorised
        over = np.flatnonzero(passes > threshold)
        sc = passes[over].tolist()
        dropped_at = np.full(len(alive), len(pairs), dtype=np.int64)  # index of the pair that dropped a row
        for k, (i, j), s in zip(over.tolist(), pairs[over].tolist(), sc):
            if alive[i] and alive[j]:
                alive[j] = False
                dup_of[j], score[j] = i, s
                dropped_at[j] = k
        k = np.arange(len(pairs))
        checked = int(np.count_nonzero((dropped_at[pairs[:, 0]] > k) & (dropped_at[pairs[:, 1]] >= k)))
        return dup_of, score, checked
    for i, j in pairs.tolist():
        if not (alive[i] and alive[j]):
            continue
        checked += 1
        s = passes(i, j)
        if s is not None:
            alive[j] = False
            dup_of[j], score[j] = i, s
    return dup_of, score, checked


def length_bound(pairs: np.ndarray, lengths: np.ndarray, threshold: float) -> np.ndarray:
    """Mask of the pairs whose ROUGE-L can pass: ROUGE-L <= 2 min(m, n) / (m + n), so the others skip the LCS."""
    li, lj = lengths[pairs[:, 0]], lengths[pairs[:, 1]]
    return 2 * np.minimum(li, lj) > threshold * (li + lj)


def exact_first(hashes: np.ndarray) -> np.ndarray:
    """Per row, the first row with the same exact-key hash (-1 for that first row itself)."""
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    ex = first[inverse].astype(np.int64)
    ex[ex == np.arange(len(hashes))] = -1
    return ex


def dedup_batches(
    batches: Iterable[Any], config: DedupConfig | None = None, spill_dir: str | Path | None = None
) -> DedupResult:
    """The three passes over text batches (lists of str or pyarrow string arrays), holding only what they need.

    Exact keys are compared by their 64-bit xxh3 hash (a false match is about n^2 / 2^65: 2e-5 at 25M rows), tokens
    by 64-bit hashes. Band keys and tokens spill to ``spill_dir`` (a temporary folder, removed at the end) once they
    pass half of ``config.max_memory``.
    """
    cfg = config or DedupConfig()
    t0 = time.perf_counter()
    store = _Store(cfg.max_memory_bytes // 2, spill_dir)
    exact_parts, length_parts = [], []
    n = 0
    try:
        for rows, sig in _signed(batches, cfg):
            n += rows
            if "exact" in sig:
                exact_parts.append(sig["exact"])
            if "keys" in sig:
                length_parts.append(sig["lengths"])
                store.add("tokens", sig["tokens"])
                for band in range(cfg.bands):
                    store.add(f"band{band}", sig["keys"][band])
            del sig
        stats: dict[str, Any] = {"rows_in": n, "seconds": {"read_and_sign": round(time.perf_counter() - t0, 3)}}
        code = np.zeros(n, dtype=np.int8)
        dup_of = np.full(n, -1, dtype=np.int64)
        score = np.zeros(n, dtype=np.float32)
        t1 = time.perf_counter()
        if cfg.exact and n:
            ex = exact_first(np.concatenate(exact_parts))
            hit = ex >= 0
            code[hit], dup_of[hit], score[hit] = 1, ex[hit], 1.0
            del ex
            logger.info("dedup exact: %d of %d rows removed", int(hit.sum()), n)
        del exact_parts
        stats["seconds"]["exact"] = round(time.perf_counter() - t1, 3)
        if cfg.near and n > 1:
            t2 = time.perf_counter()
            acc = np.zeros(0, dtype=np.int64)
            found: list[np.ndarray] = []
            capped = 0
            for band, (codes, cap) in enumerate(_band_codes(store, cfg)):
                capped += cap
                found.append(codes)
                if len(found) == 8 or band == cfg.bands - 1:  # merge now and then: bounded, few sorts
                    acc = np.unique(np.concatenate([acc, *found]))
                    found = []
            if capped:
                logger.info("near-dup: %d band(s) had a bucket over max_bucket=%d (capped)", capped, cfg.max_bucket)
            pairs = np.stack([acc // n, acc % n], axis=1)
            del acc
            pairs = pairs[np.lexsort((pairs[:, 0], pairs[:, 1]))]
            t3 = time.perf_counter()
            lengths = np.concatenate(length_parts).astype(np.int64)
            alive = dup_of < 0
            useful = pairs[alive[pairs[:, 0]] & alive[pairs[:, 1]] & length_bound(pairs, lengths, cfg.threshold)]
            rows = np.unique(useful.ravel())
            offsets = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            tokens, row_off = gather_rows(store.reader("tokens"), offsets, rows)
            store.close()
            pos = np.full(n, -1, dtype=np.int64)
            pos[rows] = np.arange(len(rows))
            step = 1 << 21  # pairs scored at a time: bounded temporaries at any corpus size
            scores = np.concatenate([np.zeros(0)] + [
                rouge_l_many(tokens, row_off, pos[useful[k : k + step, 0]], pos[useful[k : k + step, 1]])
                for k in range(0, len(useful), step)
            ])  # fmt: skip
            del tokens, row_off, pos
            near_of, near_score, checked = rouge_walk(useful, alive, scores, cfg.threshold)
            hit = near_of >= 0
            code[hit], dup_of[hit], score[hit] = 2, near_of[hit], near_score[hit]
            t4 = time.perf_counter()
            stats["seconds"].update(lsh=round(t3 - t2, 3), rouge=round(t4 - t3, 3))
            stats.update(candidates=len(pairs), rouge_checked=checked, spilled=store.spilled)
            logger.info("dedup near: %d candidate pairs, %d ROUGE-L checks, %d rows removed", len(pairs), checked,
                        int(hit.sum()))  # fmt: skip
    finally:
        store.close()
    stats["seconds"]["total"] = round(time.perf_counter() - t0, 3)
    return DedupResult(code, dup_of, score, stats)


def dedup_texts(texts: Sequence[str], config: DedupConfig | None = None, **overrides: Any) -> DedupResult:
    """The three passes over a list of texts; see :func:`dedup` for a dataset and a report."""
    cfg = DedupConfig(**{**asdict(config or DedupConfig()), **overrides})
    texts = list(texts)
    batches = (texts[i : i + cfg.batch_rows] for i in range(0, len(texts), cfg.batch_rows))
    return dedup_batches(batches, cfg)


def dedup_report(
    res: DedupResult,
    cfg: DedupConfig,
    texts: dict[int, str],
    by_reason_source: dict[str, dict[str, int]],
    seconds: float,
) -> StepReport:
    """The :class:`StepReport` of a dedup result; ``texts`` maps the quoted rows (:func:`quoted_rows`) to their text,
    ``by_reason_source`` counts removed rows per reason and ``instruction_source``."""
    removed: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    duplicates: dict[str, list[dict[str, Any]]] = {}
    by_source: Counter = Counter()
    for counts in by_reason_source.values():
        by_source.update(counts)
    for code, name in ((1, "exact"), (2, "rouge")):
        removed[name] = int(np.count_nonzero(res.code == code))
        shown = np.flatnonzero(res.code == code)[: cfg.examples].tolist()
        if shown:
            examples[name] = [texts[j] for j in shown]
            duplicates[name] = [
                {
                    "row": int(j),
                    "text": texts[j],
                    "duplicate_of_row": int(res.dup_of[j]),
                    "duplicate_of_text": texts[int(res.dup_of[j])],
                    "rouge_l": round(float(res.score[j]), 4),
                }
                for j in shown
            ]
    details = {k: v for k, v in res.stats.items() if k not in ("rows_in", "seconds")}
    details.update(
        seconds_by_pass=res.stats["seconds"],
        removed_by_reason_and_source={k: v for k, v in by_reason_source.items() if v},
        duplicates=duplicates,
    )
    return StepReport(
        step="dedup",
        rows_in=len(res.code),
        rows_out=int(np.count_nonzero(res.keep)),
        removed=removed,
        removed_by_source=dict(by_source),
        examples=examples,
        seconds=round(seconds, 3),
        config=asdict(cfg),
        details=details,
    )


def quoted_rows(res: DedupResult, examples: int) -> np.ndarray:
    """The rows a report quotes: the first ``examples`` removed rows of each pass and the rows they duplicate."""
    shown = [np.flatnonzero(res.code == c)[:examples] for c in (1, 2)]
    shown = np.concatenate(shown)
    return np.unique(np.concatenate([shown, res.dup_of[shown]])).astype(np.int64)


def removed_by_reason_source(res: DedupResult, sources: Sequence[str] | None, offset: int = 0) -> dict[str, Counter]:
    """Removed rows of ``sources`` (the ``instruction_source`` of rows ``offset`` ...) counted per reason."""
    out: dict[str, Counter] = {}
    if sources is None:
        return out
    for code, name in ((1, "exact"), (2, "rouge")):
        rows = np.flatnonzero(res.code[offset : offset + len(sources)] == code)
        if len(rows):
            out[name] = Counter(sources[i] for i in rows.tolist())
    return out


def dedup(
    ds: datasets.Dataset, config: DedupConfig | None = None, **overrides: Any
) -> tuple[datasets.Dataset, StepReport]:
    """Deduplicate ``ds`` on one text column; returns the kept rows (in order) and a :class:`StepReport`.

    ``removed`` counts rows per pass (``exact``, ``rouge``), ``removed_by_source`` per ``instruction_source`` when
    that column exists (``details["removed_by_reason_and_source"]`` splits it by pass), ``examples`` quotes the first
    ``examples`` removed rows of each pass, and ``details["duplicates"]`` pairs each of them with the kept row that
    made it a duplicate (and the ROUGE-L score).
    """
    cfg = DedupConfig(**{**asdict(config or DedupConfig()), **overrides})
    start = time.perf_counter()
    if cfg.column not in ds.column_names:
        column(ds, cfg.column)  # the error naming the column
    table = ds.with_format("arrow")
    batches = (table[i : i + cfg.batch_rows][cfg.column] for i in range(0, len(ds), cfg.batch_rows))
    res = dedup_batches((b.combine_chunks() for b in batches), cfg)
    quoted = quoted_rows(res, cfg.examples).tolist()
    texts = dict(zip(quoted, ds.select(quoted)[cfg.column][:])) if quoted else {}
    sources = column(ds, "instruction_source") if "instruction_source" in ds.column_names else None
    counts = {k: dict(v) for k, v in removed_by_reason_source(res, sources).items()}
    report = dedup_report(res, cfg, texts, counts, time.perf_counter() - start)
    keep = np.flatnonzero(res.keep)
    return (ds if len(keep) == len(ds) else ds.select(keep)), report
