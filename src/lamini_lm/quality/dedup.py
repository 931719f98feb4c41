"""Deduplication in three passes, each saying what it removed and why.

1. **exact**: rows whose normalised text (NFKC, lower-cased, white space collapsed, edge punctuation dropped; see
   :func:`~lamini_lm.quality.text.normalize`) equals an earlier row's.
2. **near**: MinHash LSH over word bigrams proposes candidate pairs (:mod:`lamini_lm.quality.minhash`).
3. **rouge**: Self-Instruct's rule, checked only on the candidates: in row order, a row is dropped when its ROUGE-L
   F-measure (``rouge_score`` tokens, no stemming) with an *earlier kept* row exceeds ``threshold`` (0.7). The first
   of a group is kept, so the result is the O(N^2) rule's, restricted to the pairs LSH proposes.

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
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lamini_lm.artifacts import StepReport
from lamini_lm.config import check_choice, check_range
from lamini_lm.io import column
from lamini_lm.quality.minhash import candidate_pairs
from lamini_lm.quality.text import TokenizedTexts, normalize_many, rouge_l, tokenize_texts

if TYPE_CHECKING:
    import datasets

__all__ = ["DedupConfig", "DedupResult", "brute_force_rouge_keep", "dedup", "dedup_texts"]

logger = logging.getLogger(__name__)


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
    num_proc: int = field(default=2, metadata={"help": "processes for MinHash"})
    examples: int = field(default=20, metadata={"help": "removed rows quoted per pass in the report"})

    def __post_init__(self):
        check_choice("punctuation", self.punctuation, ("edges", "strip", "keep"))
        check_range("threshold", self.threshold, 0, 1, low_open=True)
        for name in ("ngram", "bands", "rows", "max_bucket", "num_proc"):
            check_range(name, getattr(self, name), 1)
        check_range("examples", self.examples, 0)


@dataclass
class DedupResult:
    """Per-row outcome of :func:`dedup_texts`: ``reason[i]`` is "", "exact" or "rouge"; ``dup_of[i]`` the kept row
    that made row ``i`` a duplicate (-1 if kept); ``score[i]`` its ROUGE-L (1.0 for exact)."""

    reason: np.ndarray
    dup_of: np.ndarray
    score: np.ndarray
    stats: dict[str, Any]
    tokens: TokenizedTexts | None = None  # the ROUGE tokens of the texts (when the near pass ran), for reuse

    @property
    def keep(self) -> np.ndarray:
        return self.dup_of < 0


def _exact_pass(texts: Sequence[str], punctuation: str) -> np.ndarray:
    first: dict[str, int] = {}
    dup_of = np.full(len(texts), -1, dtype=np.int64)
    for i, key in enumerate(normalize_many(texts, punctuation)):
        j = first.setdefault(key, i)
        if j != i:
            dup_of[i] = j
    return dup_of


def _rouge_pass(
    tok: TokenizedTexts, pairs: np.ndarray, alive: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Walk candidate pairs sorted by later row: drop j if a kept earlier i has ROUGE-L > threshold."""
    dup_of = np.full(len(tok), -1, dtype=np.int64)
    score = np.zeros(len(tok), dtype=np.float32)
    lengths = tok.lengths
    alive = alive.copy()
    checked = 0
    cache: dict[int, list[int]] = {}

    def tokens(i: int) -> list[int]:
        t = cache.get(i)
        if t is None:
            t = cache[i] = tok.row(i).tolist()
        return t

    for i, j in pairs.tolist():
        if not (alive[i] and alive[j]):
            continue
        li, lj = lengths[i], lengths[j]
        if 2 * min(li, lj) <= threshold * (li + lj):  # ROUGE-L <= 2 min/(m+n): cannot pass, skip the LCS
            continue
        checked += 1
        s = rouge_l(tokens(i), tokens(j))
        if s > threshold:
            alive[j] = False
            dup_of[j], score[j] = i, s
            cache.pop(j, None)
    return dup_of, score, checked


def dedup_texts(texts: Sequence[str], config: DedupConfig | None = None, **overrides: Any) -> DedupResult:
    """The three passes over a list of texts; see :func:`dedup` for a dataset and a report."""
    cfg = DedupConfig(**{**asdict(config or DedupConfig()), **overrides})
    n = len(texts)
    stats: dict[str, Any] = {"rows_in": n, "seconds": {}}
    tok = None
    reason = np.zeros(n, dtype="<U5")
    dup_of = np.full(n, -1, dtype=np.int64)
    score = np.zeros(n, dtype=np.float32)
    t0 = time.perf_counter()
    if cfg.exact:
        ex = _exact_pass(texts, cfg.punctuation)
        hit = ex >= 0
        reason[hit], dup_of[hit], score[hit] = "exact", ex[hit], 1.0
        stats["seconds"]["exact"] = round(time.perf_counter() - t0, 3)
        logger.info("dedup exact: %d of %d rows removed", int(hit.sum()), n)
    if cfg.near and n > 1:
        t1 = time.perf_counter()
        tok = tokenize_texts(texts)
        t2 = time.perf_counter()
        pairs = candidate_pairs(
            tok,
            ngram=cfg.ngram,
            edges=cfg.edges,
            bands=cfg.bands,
            rows=cfg.rows,
            seed=cfg.seed,
            max_bucket=cfg.max_bucket,
            num_proc=cfg.num_proc,
        )
        t3 = time.perf_counter()
        near_of, near_score, checked = _rouge_pass(tok, pairs, dup_of < 0, cfg.threshold)
        hit = near_of >= 0
        reason[hit], dup_of[hit], score[hit] = "rouge", near_of[hit], near_score[hit]
        t4 = time.perf_counter()
        stats["seconds"].update(tokenize=round(t2 - t1, 3), minhash_lsh=round(t3 - t2, 3), rouge=round(t4 - t3, 3))
        stats.update(candidates=len(pairs), rouge_checked=checked)
        logger.info(
            "dedup near: %d candidate pairs, %d ROUGE-L checks, %d rows removed", len(pairs), checked, int(hit.sum())
        )
    stats["seconds"]["total"] = round(time.perf_counter() - t0, 3)
    return DedupResult(reason, dup_of, score, stats, tok)


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
    texts = column(ds, cfg.column)
    res = dedup_texts(texts, cfg)
    sources = column(ds, "instruction_source") if "instruction_source" in ds.column_names else None
    removed: dict[str, int] = {}
    by_source: Counter = Counter()
    by_reason_source: dict[str, dict[str, int]] = {}
    examples: dict[str, list[str]] = {}
    duplicates: dict[str, list[dict[str, Any]]] = {}
    for name in ("exact", "rouge"):
        rows = np.flatnonzero(res.reason == name)
        removed[name] = len(rows)
        if sources is not None and len(rows):
            counts = Counter(sources[i] for i in rows.tolist())
            by_reason_source[name] = dict(counts)
            by_source.update(counts)
        shown = rows[: cfg.examples].tolist()
        if shown:
            examples[name] = [texts[j] for j in shown]
            duplicates[name] = [
                {
                    "row": int(j),
                    "text": texts[j],
                    "duplicate_of_row": int(res.dup_of[j]),
                    "duplicate_of_text": texts[res.dup_of[j]],
                    "rouge_l": round(float(res.score[j]), 4),
                }
                for j in shown
            ]
    keep = np.flatnonzero(res.keep)
    details = {k: v for k, v in res.stats.items() if k not in ("rows_in", "seconds")}
    details.update(
        seconds_by_pass=res.stats["seconds"], removed_by_reason_and_source=by_reason_source, duplicates=duplicates
    )
    report = StepReport(
        step="dedup",
        rows_in=len(ds),
        rows_out=len(keep),
        removed=removed,
        removed_by_source=dict(by_source),
        examples=examples,
        seconds=round(time.perf_counter() - start, 3),
        config=asdict(cfg),
        details=details,
    )
    return (ds if len(keep) == len(ds) else ds.select(keep)), report


def brute_force_rouge_keep(texts: Sequence[str], threshold: float = 0.7) -> np.ndarray:
    """The O(N^2) rule itself (Self-Instruct): keep mask after comparing each row with every earlier kept row.

    Exact, not sampled: a pair is skipped only when an upper bound proves its ROUGE-L cannot pass (LCS is at most
    the multiset overlap of the two token lists), so this is the reference the LSH result is tested against.
    """
    from scipy import sparse

    tok = tokenize_texts(texts)
    n = len(tok)
    # One column per (token, occurrence number): the dot product of two rows is their multiset overlap.
    occ = np.zeros(len(tok.ids), dtype=np.int64)
    for i in range(n):
        row = tok.row(i)
        seen: Counter = Counter()
        for k, t in enumerate(row.tolist()):
            occ[tok.offsets[i] + k] = seen[t]
            seen[t] += 1
    cols = tok.ids.astype(np.int64) * (int(occ.max(initial=0)) + 1) + occ
    rows_idx = np.repeat(np.arange(n), tok.lengths)
    m = sparse.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows_idx, cols)))
    overlap = (m @ m.T).tocoo()
    lengths = tok.lengths
    i, j, o = overlap.row, overlap.col, overlap.data
    ok = (i < j) & (2 * o > threshold * (lengths[i] + lengths[j]))
    pairs = np.stack([i[ok], j[ok]], axis=1)
    pairs = pairs[np.lexsort((pairs[:, 0], pairs[:, 1]))]
    dup_of, _, _ = _rouge_pass(tok, pairs, np.ones(n, dtype=bool), threshold)
    return dup_of < 0
