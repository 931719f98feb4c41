"""Synthetic LaMini-like instruction rows with planted duplicates whose kind is known, for bench_dedup.py.

Base rows start with an instruction verb or question word, then mix English function words with content words drawn
from a Zipf law over a 40K pseudo-word vocabulary; lengths are log-normal per source (P3/FLAN originals are longer,
as in the released data). Planted rows, each placed at a random later position than the row it copies:

* ``case_ws``: the same text in other case and/or white space (upper, lower, title, doubled spaces, padding);
* ``edit1`` / ``edit2``: one or two word edits (substitute, insert, delete) of a base row of 12+ words;
* ``near_miss``: keeps the first third of a 12+-word row and rewrites the rest (ROUGE-L well under 0.7): must be kept.

Example:
    >>> from synthetic_instructions import make_rows
    >>> rows = make_rows(1000, seed=0)
    >>> sorted(set(rows["kind"]))
    ['', 'case_ws', 'edit1', 'edit2', 'near_miss']
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["SOURCE_SHARES", "make_rows"]

LEADS_Q = "What How Why Which Who When Where Can Is Does".split()
LEADS_I = (
    "Write Explain Describe Generate List Summarize Classify Translate Give Create Suggest Compare Rewrite Identify "
    "Provide Find Name Edit Calculate Convert Design Outline Analyze Develop Propose Evaluate Tell Choose"
).split()
STOPWORDS = (
    "the a of to and in is for that on with as it by be this are or from at an your you can what how which about "
    "has have its not but their more some one all would do if they there these into we two most other than"
).split()
# source -> (share of rows, median length in words)
SOURCE_SHARES = {
    "alpaca": (0.02, 11),
    "generated_flan": (0.38, 14),
    "generated_p3": (0.12, 13),
    "original_flan": (0.15, 38),
    "original_p3": (0.12, 45),
    "self_instruct_with_topic": (0.11, 12),
    "self_instruct_without_topic": (0.10, 11),
}
_SYL = (
    "ka lo mi ne ru ta shi po ve da ri su ban tor lek min dra fel gon hu ist ol pra que sel tin ur vax wen yol".split()
)


def _vocab(n: int, rng: np.random.Generator) -> np.ndarray:
    parts = rng.integers(0, len(_SYL), size=(n, 4))
    nsyl = rng.integers(2, 5, size=n)
    words = {"".join(_SYL[p] for p in row[:k]) for row, k in zip(parts.tolist(), nsyl.tolist())}
    return rng.permutation(np.array(sorted(words), dtype=object))  # frequency rank independent of spelling


def make_rows(
    n: int,
    *,
    seed: int = 0,
    case_ws: float = 0.02,
    edits: float = 0.02,
    near_miss: float = 0.005,
    vocab_size: int = 40_000,
) -> dict[str, list]:
    """``n`` rows as columns: ``instruction``, ``instruction_source``, ``kind`` (planted kind or ""), ``dup_of``.

    ``dup_of`` is the row index a planted row was made from (-1 for base rows).
    """
    rng = np.random.default_rng(seed)
    content = _vocab(vocab_size, rng)
    zipf = 1.0 / (np.arange(len(content)) + 2.7) ** 1.07
    zipf /= zipf.sum()
    n_planted = [int(n * f) for f in (case_ws, edits, near_miss)]
    n_base = n - sum(n_planted)
    names = list(SOURCE_SHARES)
    shares = np.array([SOURCE_SHARES[s][0] for s in names])
    src = rng.choice(len(names), size=n_base, p=shares / shares.sum())
    median = np.array([SOURCE_SHARES[s][1] for s in names])[src]
    # at least 6 words: shorter random rows would often be ROUGE-L > 0.7 duplicates by chance, blurring the labels
    lengths = np.clip(np.round(rng.lognormal(np.log(median), 0.5)), 6, 120).astype(np.int64)
    total = int(lengths.sum())
    is_stop = rng.random(total) < 0.4
    words = np.where(is_stop, np.array(STOPWORDS, dtype=object)[rng.integers(0, len(STOPWORDS), total)], "")
    words[~is_stop] = content[rng.choice(len(content), size=int((~is_stop).sum()), p=zipf)]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    question = rng.random(n_base) < 0.35
    leads = np.where(
        question,
        np.array(LEADS_Q, dtype=object)[rng.integers(0, len(LEADS_Q), n_base)],
        np.array(LEADS_I, dtype=object)[rng.integers(0, len(LEADS_I), n_base)],
    )
    words[starts] = leads
    tokens = np.split(words, starts[1:])
    texts = [" ".join(t) + ("?" if q else ".") for t, q in zip(tokens, question.tolist())]

    rows_text, rows_src, rows_kind, rows_of, keys = [], [], [], [], []
    long_rows = np.flatnonzero(lengths >= 12)
    # Fresh words for edits and near misses, drawn in one go (a per-word rng.choice over 40K weights is slow).
    fresh = iter(content[rng.choice(len(content), size=2 * n_planted[1] + 130 * n_planted[2] + 1, p=zipf)].tolist())
    for kind, count in zip(("case_ws", "edit", "near_miss"), n_planted):
        pool = np.arange(n_base) if kind == "case_ws" else long_rows
        for i in rng.choice(pool, size=count).tolist():
            if kind == "case_ws":
                text, k = _case_ws(texts[i], rng), "case_ws"
            elif kind == "edit":
                n_edits = int(rng.integers(1, 3))
                text, k = _edit(tokens[i], n_edits, fresh, rng) + texts[i][-1], f"edit{n_edits}"
            else:
                text, k = _near_miss(tokens[i], fresh) + texts[i][-1], "near_miss"
            rows_text.append(text)
            rows_src.append(names[src[i]])
            rows_kind.append(k)
            rows_of.append(i)
            keys.append(i + 0.5 + rng.random() * (n_base - i))  # somewhere after its origin
    all_keys = np.concatenate([np.arange(n_base, dtype=np.float64), np.array(keys)])
    order = np.argsort(all_keys, kind="stable")
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    text = texts + rows_text
    source = [names[s] for s in src.tolist()] + rows_src
    kinds = [""] * n_base + rows_kind
    dup_of = [-1] * n_base + [int(position[i]) for i in rows_of]
    return {
        "instruction": [text[o] for o in order.tolist()],
        "instruction_source": [source[o] for o in order.tolist()],
        "kind": [kinds[o] for o in order.tolist()],
        "dup_of": [dup_of[o] for o in order.tolist()],
    }


def _case_ws(text: str, rng: np.random.Generator) -> str:
    choice = int(rng.integers(0, 5))
    if choice == 0:
        return text.upper()
    if choice == 1:
        return text.lower()
    if choice == 2:
        return "  " + text.replace(" ", "  ", 2) + " \n"
    if choice == 3:
        return text.title()
    return text.replace(" ", "\t", 1).rstrip(".?")


def _edit(tokens: np.ndarray, n_edits: int, fresh: Iterator[str], rng: np.random.Generator) -> str:
    out = list(tokens)
    for _ in range(n_edits):
        op = int(rng.integers(0, 3))
        pos = int(rng.integers(1, len(out)))  # keep the lead word
        word = next(fresh)
        if op == 0:
            out[pos] = word
        elif op == 1:
            out.insert(pos, word)
        else:
            del out[pos]
    return " ".join(out)


def _near_miss(tokens: np.ndarray, fresh: Iterator[str]) -> str:
    keep = len(tokens) // 3
    return " ".join(list(tokens[:keep]) + [next(fresh) for _ in range(len(tokens) - keep)])
