"""Vectorised MinHash + LSH banding: near-duplicate *candidates* for the ROUGE-L check, on two cores.

datasketch's ``MinHash``/``MinHashLSH`` is the documented baseline (``benchmarks/bench_dedup.py`` times its plain
serial loop); this module computes the same kind of signature with numpy over all rows at once: a row's shingles are
word n-grams hashed to 64 bits (:func:`lamini_lm.quality.text.ngram_hashes`), each of ``num_perm`` hash functions is
a 32-bit permutation ``(x ^ b) * a mod 2**32`` and the signature is the per-row minimum (``np.minimum.reduceat``).
The signature is cut into ``bands`` bands of ``rows`` values; rows whose band values are all equal in some band are
candidates.

Example:
    >>> from lamini_lm.quality.text import tokenize_texts
    >>> from lamini_lm.quality.minhash import candidate_pairs
    >>> tok = tokenize_texts(["write a poem about the sea and the wind at night",
    ...                       "write a poem about the sea and the wind at dawn", "add 2 and 3"])
    >>> candidate_pairs(tok).tolist()
    [[0, 1]]
"""

from __future__ import annotations

import logging
import multiprocessing
import os

import numpy as np

from lamini_lm.quality.text import TokenizedTexts, _mix64, _ngram_chunks, short_ngram_hashes

__all__ = ["band_keys", "band_pair_codes", "candidate_pairs", "pairs_from_codes"]

logger = logging.getLogger(__name__)

# Set in the parent just before a fork-based pool starts, read by the workers (no pickling of the big arrays).
_SHARED: dict = {}


def _perm_params(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**31, size=num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)  # odd multipliers
    b = rng.integers(0, 2**32, size=num_perm, dtype=np.uint32)
    return a, b


def _keys_for_rows(lo: int, hi: int) -> np.ndarray:
    """Band keys (bands, hi - lo) of rows lo..hi-1 from the merged shingles in _SHARED."""
    x, starts, a, b, bands, rows, row_offset = (
        _SHARED[k] for k in ("x", "starts", "a", "b", "bands", "rows", "row_offset")
    )
    n = hi - lo
    s0, s1 = int(starts[lo]), int(starts[hi])
    nonempty = np.diff(starts[lo : hi + 1]) > 0
    every = bool(nonempty.all())
    keys = np.empty((bands, n), dtype=np.uint64)
    # Rows without a shingle (no token at all) get a key no other row has: they are never candidates.
    keys[:, ~nonempty] = _mix64(np.arange(lo, hi, dtype=np.uint64)[~nonempty] + np.uint64(row_offset + 0xA5A5))
    if s1 == s0:
        return keys
    xs = x[s0:s1]
    seg = (starts[lo:hi] - s0)[nonempty]
    perm = np.empty((rows, len(xs)), dtype=np.uint32)
    with np.errstate(over="ignore"):
        for band in range(bands):
            cols = slice(band * rows, (band + 1) * rows)
            # uint32 permutations x -> (x ^ b) * a mod 2^32 (a odd), in a (rows, shingles) layout so that
            # reduceat runs over contiguous memory (~5x faster than the transpose); one buffer, no temporaries
            np.bitwise_xor(xs[None, :], b[cols, None], out=perm)
            np.multiply(perm, a[cols, None], out=perm)
            sig = np.minimum.reduceat(perm, seg, axis=1)
            acc = np.full(sig.shape[1], band, dtype=np.uint64)
            for r in range(rows):
                acc = _mix64(acc * np.uint64(0x9E3779B97F4A7C15) + sig[r].astype(np.uint64))
            if every:
                keys[band] = acc
            else:
                keys[band, nonempty] = acc
    return keys


def _merge_parts(parts: list[tuple[np.ndarray, np.ndarray]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Shingle parts (each sorted by row, with per-row starts) as one array grouped by row, and its row starts: a
    row's signature is the minimum over its group, so one ``reduceat`` per permutation covers every part."""
    starts = np.zeros(n + 1, dtype=np.int64)
    if not parts:
        return np.zeros(0, dtype=np.uint32), starts
    counts = np.zeros(n, dtype=np.int64)
    for _, st in parts:
        counts += np.diff(st)
    np.cumsum(counts, out=starts[1:])
    merged = np.empty(int(starts[-1]), dtype=np.uint32)
    fill = starts[:-1].copy()  # where each row's next shingle goes
    for x, st in parts:
        c = np.diff(st)
        row_of = np.repeat(np.arange(n, dtype=np.int64), c)
        merged[fill[row_of] + (np.arange(len(x), dtype=np.int64) - st[row_of])] = x
        fill += c
    return merged, starts


def band_keys(
    tok: TokenizedTexts,
    *,
    ngram: int = 2,
    ngram_min: int | None = None,
    edges: bool = True,
    bands: int = 32,
    rows: int = 4,
    seed: int = 42,
    num_proc: int = 1,
    chunk_shingles: int = 200_000,
    row_offset: int = 0,
) -> np.ndarray:
    """LSH band keys of every row: a ``(bands, len(tok))`` uint64 array (MinHash with ``bands * rows`` permutations).

    Shingles are the word n-grams of lengths ``ngram_min`` (default ``ngram``) to ``ngram``, plus (``edges``) a
    row's first and last word as two shingles. A row's keys depend on its own tokens only, so keys computed batch by
    batch equal keys computed at once; ``row_offset`` (the batch's first row) keeps the keys of rows without any
    token unique across batches.
    """
    ngram_min = ngram if ngram_min is None else ngram_min
    n = len(tok)
    # Shingle parts, each sorted by row; a row's signature is the minimum over all parts (no concatenation, no sort).
    parts = []

    def add(hashes: np.ndarray, row_of: np.ndarray) -> None:
        x = (hashes >> np.uint64(32)).astype(np.uint32)  # the permutations work on 32 bits
        parts.append((x, np.searchsorted(row_of, np.arange(n + 1))))

    for k in range(ngram_min, ngram + 1):
        # chunk by chunk, keeping only the 32 bits MinHash uses: the 64-bit temporaries never exist for all rows
        pieces = [((h >> np.uint64(32)).astype(np.uint32), r) for h, r in _ngram_chunks(tok, k)]
        x = np.concatenate([p[0] for p in pieces]) if pieces else np.zeros(0, dtype=np.uint32)
        row_of = np.concatenate([p[1] for p in pieces]) if pieces else np.zeros(0, dtype=np.int32)
        del pieces
        parts.append((x, np.searchsorted(row_of, np.arange(n + 1))))
        del row_of
        if k > 1 and not edges:  # rows shorter than k words get one shorter shingle (edges cover them otherwise)
            add(*short_ngram_hashes(tok, k))
    if edges and len(tok.ids):
        # "^first" and "last$" shingles: an edit of a short row keeps its ends, so its Jaccard stays high.
        rows_ne = np.flatnonzero(tok.lengths > 0)
        add(_mix64(tok.token_hash[tok.ids[tok.offsets[rows_ne]]] ^ np.uint64(0x2545F4914F6CDD1D)), rows_ne)
        add(_mix64(tok.token_hash[tok.ids[tok.offsets[rows_ne + 1] - 1]] ^ np.uint64(0x7FB5D329728EA185)), rows_ne)
    a, b = _perm_params(bands * rows, seed)
    x, starts = _merge_parts(parts, n)
    parts.clear()
    _SHARED.update(x=x, starts=starts, a=a, b=b, bands=bands, rows=rows, row_offset=row_offset)
    # Chunks of about chunk_shingles shingles keep the (rows x shingles) temporaries small.
    bounds = [0]
    while bounds[-1] < n:
        nxt = int(np.searchsorted(starts, starts[bounds[-1]] + chunk_shingles, side="right")) - 1
        bounds.append(min(n, max(nxt, bounds[-1] + 1)))
    spans = list(zip(bounds[:-1], bounds[1:]))
    try:
        if num_proc > 1 and len(spans) > 1 and "fork" in multiprocessing.get_all_start_methods():
            with multiprocessing.get_context("fork").Pool(min(num_proc, os.cpu_count() or 1)) as pool:
                out = pool.starmap(_keys_for_rows, spans, chunksize=max(1, len(spans) // (4 * num_proc)))
        else:
            out = [_keys_for_rows(lo, hi) for lo, hi in spans]
    finally:
        _SHARED.clear()
    return np.concatenate(out, axis=1) if out else np.zeros((bands, 0), dtype=np.uint64)


def candidate_pairs(
    tok: TokenizedTexts,
    *,
    ngram: int = 2,
    ngram_min: int | None = None,
    edges: bool = True,
    bands: int = 32,
    rows: int = 4,
    seed: int = 42,
    max_bucket: int = 64,
    num_proc: int = 1,
    keys: np.ndarray | None = None,
) -> np.ndarray:
    """Unique candidate pairs ``(i, j)`` with ``i < j``, sorted by ``j`` then ``i``: an ``(n, 2)`` int64 array.

    Args:
        max_bucket: in a bucket (rows sharing one band key), a row is paired with at most the ``max_bucket`` rows
            just before it. Huge buckets hold rows whose band is all stop words; a true near-duplicate pair also
            shares several other, rarer bands, so this bounds the work without losing it (the count of capped
            buckets is logged).
    """
    if keys is None:
        keys = band_keys(
            tok,
            ngram=ngram,
            ngram_min=ngram_min,
            edges=edges,
            bands=bands,
            rows=rows,
            seed=seed,
            num_proc=num_proc,
        )
    n = keys.shape[1]
    found: list[np.ndarray] = []
    capped = 0
    for band in range(keys.shape[0]):
        codes, cap = band_pair_codes(keys[band], max_bucket)
        found.append(codes)
        capped += cap
    return pairs_from_codes(found, n, capped, max_bucket)


def _repeated(keys: np.ndarray, bits: int = 22) -> np.ndarray:
    """Rows (ascending) whose key may occur more than once: every row of a repeated key, plus a few others.

    Most band keys are unique; counting keys by 22-bit slices of them (three slices, each pass keeping the rows
    whose slice value is shared) leaves the repeated keys and a few percent of the unique ones, so the sort that
    groups buckets runs on a fraction of the rows.
    """
    cand = np.arange(len(keys))
    mask = np.uint64((1 << bits) - 1)
    for shift in (0, bits, 2 * bits):
        if len(cand) < 1 << 16:
            break
        part = ((keys[cand] >> np.uint64(shift)) & mask).astype(np.intp)
        cand = cand[np.bincount(part, minlength=1 << bits)[part] > 1]
    return cand


def band_pair_codes(keys: np.ndarray, max_bucket: int = 64) -> tuple[np.ndarray, bool]:
    """Candidate pairs of one band as codes ``i * n + j`` (``n = len(keys)``), and whether a bucket was capped.

    In a bucket (rows sharing the key), each row is paired with the ``max_bucket`` rows just before it in row order.
    """
    n = len(keys)
    rows = _repeated(keys)  # only these can share a key
    # An unstable argsort (about 2x faster than a stable one on 64-bit keys), then the few rows that share a key are
    # put back in row order: the same order a stable sort gives, so order[p] < order[p + d] within a bucket.
    sub = keys[rows]
    order = np.argsort(sub)
    ks = sub[order]
    order = rows[order]
    m = len(ks)
    idx = np.flatnonzero(ks[:-1] == ks[1:])  # positions p with ks[p] == ks[p + d], for d = 1
    if len(idx):
        run = np.zeros(m, dtype=bool)
        run[idx] = run[idx + 1] = True
        at = np.flatnonzero(run)
        order[at] = order[at][np.lexsort((order[at], ks[at]))]
    found = []
    d = 1
    while len(idx) and d <= max_bucket:
        found.append(order[idx] * np.int64(n) + order[idx + d])
        d += 1
        idx = idx[idx + d < m]
        idx = idx[ks[idx + d] == ks[idx]]
    return (np.concatenate(found) if found else np.zeros(0, dtype=np.int64)), bool(len(idx) > 0)


def pairs_from_codes(found: list[np.ndarray], n: int, capped: int = 0, max_bucket: int = 64) -> np.ndarray:
    """Unique pairs ``(i, j)`` from :func:`band_pair_codes`' codes, sorted by ``j`` then ``i``."""
    if capped:
        logger.info("near-dup: %d band(s) had a bucket larger than max_bucket=%d (capped)", capped, max_bucket)
    found = [f for f in found if len(f)]
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    codes = np.unique(np.concatenate(found))  # sorted by i * n + j
    pairs = np.stack([codes // n, codes % n], axis=1)
    return pairs[np.lexsort((pairs[:, 0], pairs[:, 1]))]
