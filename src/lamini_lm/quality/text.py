"""Text normalisation, ROUGE tokenisation and vectorised token/n-gram hashing shared by dedup and decontamination.

Tokens follow ``rouge_score``'s tokenizer exactly (lower-case, every run of characters outside ``[a-z0-9]`` is a
separator, no stemming: Self-Instruct's ``RougeScorer(["rougeL"], use_stemmer=False)``), so a ROUGE-L computed on
these tokens equals ``rouge_score``'s.

Example:
    >>> from lamini_lm.quality.text import normalize, rouge_tokens, rouge_l
    >>> normalize("  Name   THREE primary colours. ")
    'name three primary colours'
    >>> rouge_tokens("What's 2+2?")
    ['what', 's', '2', '2']
    >>> round(rouge_l(rouge_tokens("name three colours"), rouge_tokens("name three primary colours")), 3)
    0.857
"""

from __future__ import annotations

import hashlib
import multiprocessing
import re
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "TokenizedTexts",
    "lcs_length",
    "ngram_hashes",
    "normalize",
    "normalize_many",
    "rouge_l",
    "rouge_l_many",
    "rouge_tokens",
    "short_ngram_hashes",
    "exact_key_hashes",
    "forked_map",
    "tokenize_texts",
]

_TOKEN_RE = re.compile(r"[a-z0-9]+")
_SPACE_RE = re.compile(r"\s+")
# What Python's \s matches among ASCII characters, spelled out for pyarrow's RE2 (whose \s is narrower).
_ASCII_SPACE = r"[\t\n\x0b\x0c\r\x1c-\x1f ]+"
# Trailing sentence punctuation and wrapping quotes say nothing about the task; inner punctuation can ("C" vs "C++").
_EDGE_PUNCT = " \t\n.?!;:,\"'`“”‘’«»"
_ALL_PUNCT_RE = re.compile(r"[^\w\s]+")
_MASK64 = (1 << 64) - 1


def normalize(text: str, punctuation: str = "edges") -> str:
    """The exact-duplicate key of a text: Unicode NFKC, lower-cased, white space collapsed.

    Args:
        punctuation: ``"edges"`` (default) drops punctuation and quotes at both ends; ``"strip"`` drops all
            punctuation; ``"keep"`` keeps it.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    if punctuation == "strip":
        text = _ALL_PUNCT_RE.sub(" ", text)
    elif punctuation not in ("edges", "keep"):
        raise ValueError(f"punctuation must be 'edges', 'strip' or 'keep', got {punctuation!r}")
    text = _SPACE_RE.sub(" ", text)
    return text.strip(_EDGE_PUNCT) if punctuation == "edges" else text.strip(" ")


def _ascii_mapped(texts: Sequence[str | None] | Any, table: np.ndarray):
    """``texts`` (a list or a pyarrow string array) as a pyarrow large_string array (nulls as ""), and that array
    with every byte passed through ``table`` (a 256-entry byte map).

    Only meaningful for ASCII rows (callers redo the others in Python): mapping bytes in numpy is one pass over the
    buffer, where pyarrow's regex kernels cost as much as Python's ``re``.
    """
    import pyarrow as pa

    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if isinstance(texts, pa.Array):  # no round trip through Python strings
        arr = texts.cast(pa.large_string()).fill_null("")
    else:
        arr = pa.array(texts, type=pa.large_string()).fill_null("")
    offsets_buf, data_buf = arr.buffers()[1], arr.buffers()[2]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, dtype=np.uint8)
    mapped = table[data]
    out = pa.LargeStringArray.from_buffers(len(arr), offsets_buf, pa.py_buffer(mapped), offset=arr.offset)
    return arr, out


_LOWER = np.arange(256, dtype=np.uint8)
_LOWER[65:91] += 32
# rouge tokens: lower-case, everything outside [a-z0-9] becomes a space
_TOKEN_TABLE = np.full(256, 32, dtype=np.uint8)
for _c in b"abcdefghijklmnopqrstuvwxyz0123456789":
    _TOKEN_TABLE[_c] = _c
_TOKEN_TABLE[65:91] = np.arange(97, 123, dtype=np.uint8)
# exact keys: lower-case, ASCII white space (as Python's str.isspace sees it) becomes a space
_KEY_TABLE = _LOWER.copy()
_KEY_TABLE[[9, 10, 11, 12, 13, 28, 29, 30, 31]] = 32


def _words(arr):
    """Split a pyarrow string array on single spaces, dropping the empty pieces: (flat words, parent row)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lists = pc.split_pattern(arr, " ")
    words = pc.list_flatten(lists)
    parent = pc.list_parent_indices(lists).to_numpy().astype(np.int32)
    keep = pc.not_equal(words, "").to_numpy(zero_copy_only=False)
    return words.filter(pa.array(keep)), parent[keep]


def _squeeze_spaces(mapped):
    """A large_string array with every run of spaces inside a row made one space, with numpy over the buffer."""
    import pyarrow as pa

    n = len(mapped)
    offsets = np.frombuffer(mapped.buffers()[1], dtype=np.int64)[mapped.offset : mapped.offset + n + 1]
    lo, hi = int(offsets[0]), int(offsets[-1])
    if hi == lo:
        return mapped
    data = np.frombuffer(mapped.buffers()[2], dtype=np.uint8)[lo:hi]
    space = data == 32
    drop = np.zeros(len(data), dtype=bool)
    drop[1:] = space[1:] & space[:-1]  # a space right after a space ...
    drop[offsets[:-1][offsets[:-1] < hi] - lo] = False  # ... of the same row
    kept = np.zeros(len(data) + 1, dtype=np.int64)
    np.cumsum(~drop, out=kept[1:])
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(kept[offsets - lo]), pa.py_buffer(data[~drop]))


def normalize_many(texts: Sequence[str | None] | Any, punctuation: str = "edges") -> list[str]:
    """:func:`normalize` of many texts (a list or a pyarrow string array); ASCII rows go through pyarrow's
    vectorised kernels (same keys, faster)."""
    return _normalized(texts, punctuation, as_bytes=False)


def exact_key_hashes(texts: Sequence[str | None] | Any, punctuation: str = "edges") -> np.ndarray:
    """The 64-bit xxh3 of each text's :func:`normalize` key (UTF-8), as uint64: dedup's exact pass compares these.

    The keys go from Arrow to bytes without Python strings in between (the hash is the same as of ``key.encode()``).
    """
    import xxhash

    keys = _normalized(texts, punctuation, as_bytes=True)
    return np.array(list(map(xxhash.xxh3_64_intdigest, keys)), dtype=np.uint64).reshape(len(keys))


def _normalized(texts: Sequence[str | None] | Any, punctuation: str, as_bytes: bool) -> list:
    import pyarrow as pa
    import pyarrow.compute as pc

    arr, mapped = _ascii_mapped(texts, _KEY_TABLE)
    ascii_ = pc.string_is_ascii(arr).to_numpy(zero_copy_only=False)
    if punctuation not in ("edges", "keep") or not ascii_.any():
        keys = [normalize(t, punctuation) for t in arr.to_pylist()]
        return [k.encode() for k in keys] if as_bytes else keys
    # white space runs become one space (and the trim drops a space at either end): the words joined by one space
    trimmed = pc.utf8_trim(_squeeze_spaces(mapped), _EDGE_PUNCT if punctuation == "edges" else " ")
    keys = (trimmed.cast(pa.large_binary()) if as_bytes else trimmed).to_pylist()
    for i in np.flatnonzero(~ascii_).tolist():
        key = normalize(arr[i].as_py(), punctuation)
        keys[i] = key.encode() if as_bytes else key
    return keys


def rouge_tokens(text: str) -> list[str]:
    """``rouge_score.tokenize.tokenize(text, None)``, as one regex."""
    return _TOKEN_RE.findall(text.lower())


def lcs_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common subsequence of two token sequences (bit-parallel, Hyyrö 2004)."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    masks: dict = {}
    for i, tok in enumerate(b):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(b)) - 1
    v = full
    for tok in a:
        m = masks.get(tok)
        if m is not None:
            u = v & m
            v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def rouge_l(a: Sequence, b: Sequence) -> float:
    """ROUGE-L F-measure of two token sequences (symmetric; equals ``rouge_score``'s ``fmeasure``)."""
    if not a or not b:
        return 0.0
    lcs = lcs_length(a, b)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(b), lcs / len(a)
    return 2 * precision * recall / (precision + recall)


@dataclass
class TokenizedTexts:
    """Many texts as one flat array of token ids plus row offsets (row ``i`` is ``ids[offsets[i]:offsets[i+1]]``).

    ``token_hash[id]`` is a stable 64-bit hash of the token string (the same across runs and corpora), which the
    n-gram and MinHash code uses; ids themselves depend on the order tokens were first seen.
    """

    ids: np.ndarray  # int32, all tokens of all rows
    offsets: np.ndarray  # int64, len(rows) + 1
    vocab: dict[str, int]
    token_hash: np.ndarray  # uint64, one per vocab id

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def row(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i] : self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def _stable_hash(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")


_HASHES: dict[str, int] = {}  # token -> _stable_hash, kept across batches (a corpus reuses most of its words)


def _token_hashes(words: list[str]) -> np.ndarray:
    if len(_HASHES) > 4_000_000:  # bounded: a few hundred MB at most
        _HASHES.clear()
    get = _HASHES.get
    vals = [get(w) for w in words]
    if None in vals:
        for k, v in enumerate(vals):
            if v is None:
                vals[k] = _HASHES[words[k]] = _stable_hash(words[k])
    return np.array(vals, dtype=np.uint64) if vals else np.zeros(0, dtype=np.uint64)


def tokenize_texts(texts: Sequence[str | None] | Any) -> TokenizedTexts:
    """Tokenise texts (a list or a pyarrow string array; None is "") with :func:`rouge_tokens`.

    ASCII rows are tokenised by pyarrow's vectorised string kernels (lower-case, split on runs outside ``[a-z0-9]``:
    the same tokens); the rare non-ASCII rows by :func:`rouge_tokens` itself, so the result is exactly
    ``rouge_score``'s.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arr, mapped = _ascii_mapped(texts, _TOKEN_TABLE)
    n = len(arr)
    tokens, parent = _words(mapped)
    keep = np.ones(len(parent), dtype=bool)
    non_ascii = np.flatnonzero(~pc.string_is_ascii(arr).to_numpy(zero_copy_only=False))
    if len(non_ascii):
        keep &= ~np.isin(parent, non_ascii)
    tokens, parent = tokens.filter(pa.array(keep)), parent[keep]
    if len(non_ascii):
        extra = [(i, t) for i in non_ascii.tolist() for t in rouge_tokens(arr[i].as_py())]
        if extra:
            tokens = pa.concat_arrays([tokens, pa.array([t for _, t in extra], type=tokens.type)])
            parent = np.concatenate([parent, np.array([i for i, _ in extra], dtype=np.int32)])
            order = np.argsort(parent, kind="stable")  # appended rows slot into place; in-row order is kept
            tokens, parent = tokens.take(pa.array(order)), parent[order]
    encoded = pc.dictionary_encode(tokens)
    ids = encoded.indices.to_numpy().astype(np.int32) if len(tokens) else np.zeros(0, dtype=np.int32)
    words = encoded.dictionary.to_pylist() if len(tokens) else []
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(parent, minlength=n), out=offsets[1:])
    token_hash = _token_hashes(words)
    return TokenizedTexts(ids, offsets, {w: i for i, w in enumerate(words)}, token_hash)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a cheap, well-mixing bijection on uint64 arrays (wraps silently, by design)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def ngram_hashes(tok: TokenizedTexts, n: int, pad: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of every word n-gram of every row, and the row each came from.

    Args:
        n: n-gram length in tokens.
        pad: also emit the n-grams of a row that has fewer than ``n`` tokens (as one shorter n-gram), so that no
            non-empty row is left without a shingle (MinHash needs that; decontamination does not).

    Returns:
        ``(hashes, rows)``: uint64 and int32 arrays of equal length.
    """
    pieces = list(_ngram_chunks(tok, n))
    hashes = np.concatenate([p[0] for p in pieces]) if pieces else np.zeros(0, dtype=np.uint64)
    rows = np.concatenate([p[1] for p in pieces]) if pieces else np.zeros(0, dtype=np.int32)
    if pad and n > 1:
        extra, short = short_ngram_hashes(tok, n)
        if len(short):
            hashes, rows = np.concatenate([hashes, extra]), np.concatenate([rows, short])
    return hashes, rows


def short_ngram_hashes(tok: TokenizedTexts, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The padding of :func:`ngram_hashes`: one shorter n-gram for each non-empty row with fewer than ``n`` tokens.

    Returns:
        ``(hashes, rows)``: uint64 and int32 arrays of equal length, ``rows`` ascending.
    """
    lengths = tok.lengths
    short = np.flatnonzero((lengths > 0) & (lengths < n))
    extra = np.array([_short_hash(tok, i) for i in short], dtype=np.uint64)
    return extra, short.astype(np.int32)


def _ngram_chunks(tok: TokenizedTexts, n: int, chunk_tokens: int = 4_000_000):
    """:func:`ngram_hashes` (without padding) in row chunks of about ``chunk_tokens`` tokens: bounded temporaries."""
    bounds = [0]
    while bounds[-1] < len(tok):
        nxt = int(np.searchsorted(tok.offsets, tok.offsets[bounds[-1]] + chunk_tokens, side="right")) - 1
        bounds.append(min(len(tok), max(nxt, bounds[-1] + 1)))
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        t0, t1 = int(tok.offsets[lo]), int(tok.offsets[hi])
        if t1 - t0 < n:
            continue
        h = tok.token_hash[tok.ids[t0:t1]]
        row_of_token = np.repeat(np.arange(lo, hi, dtype=np.int32), np.diff(tok.offsets[lo : hi + 1]))
        # Polynomial hash over the (already well-mixed) token hashes, then one finaliser: two passes per word.
        acc = h
        with np.errstate(over="ignore"):
            for k in range(1, n):
                acc = acc[:-1] * np.uint64(0x9E3779B97F4A7C15) + h[k:]
            acc = _mix64(acc)
        row_of_start = row_of_token[: len(acc)]
        valid = np.arange(t0 + n, t0 + n + len(acc), dtype=np.int64) <= tok.offsets[1:][row_of_start]
        yield acc[valid], row_of_start[valid]


def _short_hash(tok: TokenizedTexts, i: int) -> int:
    acc = 0
    for t in tok.token_hash[tok.row(i)].tolist():
        acc = (acc * 0x9E3779B97F4A7C15 + t) & _MASK64
        acc = int(_mix64(np.array([acc], dtype=np.uint64))[0])
    return acc ^ 0x5BD1E995  # differs from a full-length n-gram of the same tokens


def rouge_l_many(tokens: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`rouge_l` of many pairs of rows at once: row ``k`` is ``tokens[offsets[k]:offsets[k + 1]]``, pair ``p``
    is rows ``a[p]`` and ``b[p]``; returns float64 scores, equal to ``rouge_l`` of each pair bit for bit.

    The LCS is Hyyrö's bit-parallel recurrence run on numpy vectors across pairs (the shorter row of a pair as the
    bits of one uint64, so rows of up to 64 tokens; pairs with a longer shorter row go through :func:`rouge_l`).
    """
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    out = np.zeros(len(a), dtype=np.float64)
    if not len(a):
        return out
    la, lb = offsets[a + 1] - offsets[a], offsets[b + 1] - offsets[b]
    short_is_a = la < lb
    s_row, l_row = np.where(short_is_a, a, b), np.where(short_is_a, b, a)
    ls, ll = np.minimum(la, lb), np.maximum(la, lb)
    lcs = np.zeros(len(a), dtype=np.int64)
    slow = np.flatnonzero(ls > 64)
    for p in slow.tolist():
        ra, rb = int(a[p]), int(b[p])
        row_a, row_b = tokens[offsets[ra] : offsets[ra + 1]], tokens[offsets[rb] : offsets[rb + 1]]
        lcs[p] = lcs_length(row_a.tolist(), row_b.tolist())
    fast = np.flatnonzero((ls <= 64) & (ls > 0))
    fast = fast[np.lexsort((ls[fast], ll[fast]))]  # similar lengths together: little padding
    last = max(len(tokens) - 1, 0)
    at = 0
    while at < len(fast):
        # at most about 2^24 token comparisons per chunk (pairs are sorted by the long row's length)
        step = len(fast) - at
        while step > 256 and step * int(ll[fast[at + step - 1]]) * min(64, int(ll[fast[at + step - 1]])) > 1 << 24:
            step //= 2
        chunk = fast[at : at + step]
        at += len(chunk)
        ms, ml = int(ls[chunk].max()), int(ll[chunk].max())
        ms8 = (ms + 7) // 8 * 8
        s_tok = tokens[np.minimum(offsets[s_row[chunk]][:, None] + np.arange(ms8), last)]
        l_tok = tokens[np.minimum(offsets[l_row[chunk]][:, None] + np.arange(ml), last)]
        # match[p, k]: bit i set when short[i] == long[k] (bits past the short row's end are masked by `full`)
        packed = np.zeros((len(chunk), ml, 8), dtype=np.uint8)
        packed[:, :, : ms8 // 8] = np.packbits(s_tok[:, None, :] == l_tok[:, :, None], axis=None,
                                               bitorder="little").reshape(len(chunk), ml, ms8 // 8)  # fmt: skip
        match = packed.view("<u8")[:, :, 0]
        del packed
        match[np.arange(ml)[None, :] >= ll[chunk][:, None]] = 0  # past the end of the long row: no step
        match = np.ascontiguousarray(match.T)
        lc = ls[chunk].astype(np.uint64)
        full = np.where(lc == 64, np.uint64(0xFFFFFFFFFFFFFFFF), (np.uint64(1) << (lc & np.uint64(63))) - np.uint64(1))
        v = full.copy()
        with np.errstate(over="ignore"):
            for k in range(ml):
                u = v & match[k]
                v = ((v + u) | (v - u)) & full
        lcs[chunk] = ls[chunk] - np.bitwise_count(v).astype(np.int64)
    hit = lcs > 0
    la_f, lb_f, lcs_f = la[hit].astype(np.float64), lb[hit].astype(np.float64), lcs[hit].astype(np.float64)
    precision, recall = lcs_f / lb_f, lcs_f / la_f
    out[hit] = 2 * precision * recall / (precision + recall)
    return out


def forked_map(
    fn: Callable[..., Any],
    items: Iterable[Any],
    num_proc: int,
    *args: Any,
    payload: Callable[[Any], Any] | None = None,
    fresh: bool = False,
) -> Iterator[tuple[Any, Any]]:
    """``(item, fn(payload(item), *args))`` for each item, in order: on ``num_proc`` forked processes with
    ``num_proc + 1`` items in flight (the caller reads and writes while the workers compute), or in this process
    when ``num_proc`` is 1 or fork is unavailable. ``payload`` picks what is sent (default: the item). What ``fn``
    needs beyond that is best set in a module global before the first item is drawn: the workers inherit it.

    ``fresh``: fork one process per item instead of a pool, so that the payload reaches it by the fork itself (no
    pickling through a pipe: worth it for payloads of tens of MB); only the result comes back pickled.
    """
    send = payload or (lambda item: item)
    if num_proc <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        for item in items:
            yield item, fn(send(item), *args)
        return
    try:  # pyarrow imports pandas on its first compute call: once here rather than once in every worker
        import pandas  # noqa: F401
    except ImportError:
        pass
    ctx = multiprocessing.get_context("fork")
    if fresh:
        pending: deque = deque()
        try:
            for item in items:
                pending.append((item, _fork_one(ctx, fn, send(item), args)))
                if len(pending) >= num_proc:
                    done, job = pending.popleft()
                    yield done, _collect(*job)
            while pending:
                done, job = pending.popleft()
                yield done, _collect(*job)
        finally:
            for _, (proc, conn) in pending:
                proc.kill()
                proc.join()
                conn.close()
        return
    with ctx.Pool(num_proc) as pool:
        pending = deque()
        for item in items:
            pending.append((item, pool.apply_async(fn, (send(item), *args))))
            if len(pending) > num_proc:
                done, job = pending.popleft()
                yield done, job.get()
        while pending:
            done, job = pending.popleft()
            yield done, job.get()


def _fork_one(ctx, fn: Callable[..., Any], data: Any, args: tuple):
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_run_child, args=(send, fn, data, args), daemon=True)  # forked: nothing pickled
    proc.start()
    send.close()
    return proc, receive


def _run_child(conn, fn: Callable[..., Any], data: Any, args: tuple) -> None:
    try:
        conn.send((True, fn(data, *args)))
    except BaseException as e:  # the parent re-raises it
        conn.send((False, e))
    finally:
        conn.close()


def _collect(proc, conn) -> Any:
    try:
        ok, value = conn.recv()
    except EOFError:
        proc.join()
        raise RuntimeError(f"a worker process died (exit code {proc.exitcode})") from None
    finally:
        conn.close()
    proc.join()
    if not ok:
        raise value
    return value
