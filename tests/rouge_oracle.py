"""The O(N^2) ROUGE-L rule itself (Self-Instruct), the reference the LSH dedup is tested and benchmarked against.

It lives with the tests (``benchmarks/bench_dedup.py`` imports it from here) because only they need it, and so does
its scipy dependency (the ``test`` and ``bench`` extras).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from lamini_lm.quality.dedup import rouge_walk
from lamini_lm.quality.text import rouge_l, tokenize_texts

__all__ = ["brute_force_rouge_keep"]


def brute_force_rouge_keep(texts: Sequence[str], threshold: float = 0.7) -> np.ndarray:
    """Keep mask after comparing each row with every earlier kept row.

    Exact, not sampled: a pair is skipped only when an upper bound proves its ROUGE-L cannot pass (LCS is at most
    the multiset overlap of the two token lists).
    """
    from scipy import sparse

    tok = tokenize_texts(texts)
    n = len(tok)
    # One column per (token, occurrence number): the dot product of two rows is their multiset overlap.
    occ = np.zeros(len(tok.ids), dtype=np.int64)
    for i in range(n):
        seen: Counter = Counter()
        for k, t in enumerate(tok.row(i).tolist()):
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

    def passes(a: int, b: int) -> float | None:
        s = rouge_l(tok.row(a).tolist(), tok.row(b).tolist())
        return s if s > threshold else None

    dup_of, _, _ = rouge_walk(pairs, np.ones(n, dtype=bool), passes)
    return dup_of < 0
