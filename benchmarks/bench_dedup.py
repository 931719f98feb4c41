"""Dedup + decontamination at LaMini scale (2.58M rows) against datasketch's plain serial MinHashLSH loop.

Prints: machine facts; the timed pipeline (exact + MinHash LSH + ROUGE-L verify + 13-gram decontamination against
15 synthetic eval sets the size of SPEC 7's) with wall time and peak RSS; precision/recall against the planted
duplicates and planted eval questions; datasketch's serial loop timed on a sample and extrapolated (said so); and the
LSH result against the brute-force O(N^2) ROUGE-L rule on a --check-rows sample (5% case/space variants, 5% word
edits, 2% near misses).

Usage:
    python benchmarks/bench_dedup.py --rows 200000          # iterate
    python benchmarks/bench_dedup.py                        # the full 2.58M rows
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import print_machine  # noqa: E402
from lamini_lm.quality.decontaminate import NgramIndex  # noqa: E402
from lamini_lm.quality.dedup import DedupConfig, brute_force_rouge_keep, dedup_texts  # noqa: E402
from lamini_lm.quality.text import tokenize_texts  # noqa: E402
from synthetic_instructions import make_rows  # noqa: E402

# SPEC 7: documents per evaluated split
EVAL_SIZES = {
    "openbookqa": 500, "sciq": 1000, "race": 1045, "arc_challenge": 1172, "piqa": 1838, "record": 10000,
    "sst2": 872, "mrpc": 408, "rte": 277, "mnli": 9815, "mnli_mismatch": 9832, "wsc273": 273,
    "winogrande": 1267, "wic": 638, "hellaswag": 10042,
}  # fmt: skip


def peak_rss_gb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 2**20


def eval_sets(seed: int) -> dict[str, list[str]]:
    """Synthetic eval documents (passage-like, 40-word median) per task, from another seed of the generator."""
    total = sum(EVAL_SIZES.values())
    rows = make_rows(total, seed=seed + 1000, case_ws=0, edits=0, near_miss=0)["instruction"]
    out, at = {}, 0
    for task, n in EVAL_SIZES.items():
        out[task] = rows[at : at + n]
        at += n
    return out


def plant_contamination(
    texts: list[str], free: np.ndarray, evals: dict[str, list[str]], count: int, seed: int
) -> np.ndarray:
    """Put a 15-word span of a random eval document into ``count`` of the ``free`` rows; returns their indices."""
    rng = np.random.default_rng(seed)
    docs = [d for ts in evals.values() for d in ts if len(d.split()) >= 16]
    rows = rng.choice(free, size=count, replace=False)
    for r in rows.tolist():
        words = docs[int(rng.integers(len(docs)))].split()
        start = int(rng.integers(0, len(words) - 15))
        texts[r] = "Answer the question: " + " ".join(words[start : start + 15])
    return np.sort(rows)


def datasketch_rate(texts: list[str], num_perm: int, threshold: float) -> float:
    """Rows/s of the plain serial loop: MinHash of each row's word bigrams, query, insert (datasketch's docs)."""
    from datasketch import MinHash, MinHashLSH

    tok = tokenize_texts(texts)
    vocab = list(tok.vocab)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    t0 = time.perf_counter()
    for i in range(len(tok)):
        words = [vocab[t] for t in tok.row(i).tolist()]
        m = MinHash(num_perm=num_perm)
        m.update_batch([f"{a} {b}".encode() for a, b in zip(words, words[1:])] or [w.encode() for w in words])
        lsh.query(m)
        lsh.insert(str(i), m)
    return len(tok) / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=2_580_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-proc", type=int, default=2)
    p.add_argument("--contaminated", type=int, default=500, help="training rows given an eval-set span")
    p.add_argument("--baseline-rows", type=int, default=20_000, help="rows timed for the datasketch loop")
    p.add_argument("--check-rows", type=int, default=5000, help="sample compared with the brute-force rule")
    p.add_argument("--repeats", type=int, default=1, help="timed repeats of the pipeline (median quoted)")
    args = p.parse_args()

    print_machine(("numpy", "datasketch", "rouge-score", "datasets"))
    t = time.perf_counter()
    data = make_rows(args.rows, seed=args.seed)
    texts, kinds = data["instruction"], np.array(data["kind"], dtype="<U12")
    evals = eval_sets(args.seed)
    # only base rows that no planted duplicate copies, so the duplicate labels stay true
    origins = np.array(data["dup_of"])
    free = np.setdiff1d(np.flatnonzero(kinds == ""), origins[origins >= 0])
    planted_rows = plant_contamination(texts, free, evals, args.contaminated, args.seed)
    kinds[planted_rows] = "contaminated"
    counts = {
        k or "base": int((kinds == k).sum()) for k in ("", "case_ws", "edit1", "edit2", "near_miss", "contaminated")
    }
    print(f"# generated {len(texts):,} rows in {time.perf_counter() - t:.1f}s: {counts}")

    walls = []
    for rep in range(args.repeats):
        t0 = time.perf_counter()
        res = dedup_texts(texts, DedupConfig(num_proc=args.num_proc))
        t1 = time.perf_counter()
        index = NgramIndex(evals, ngram=13)
        masks = index.row_masks(res.tokens)  # the dedup pass's tokens: decontamination needs the same ROUGE words
        t2 = time.perf_counter()
        walls.append(t2 - t0)
        print(
            f"run {rep + 1}: total {t2 - t0:.1f}s = dedup {t1 - t0:.1f}s {res.stats['seconds']} "
            f"+ decontamination {t2 - t1:.1f}s; candidates {res.stats['candidates']:,}, "
            f"ROUGE-L checks {res.stats['rouge_checked']:,}; peak RSS so far {peak_rss_gb():.2f} GB"
        )
    wall = float(np.median(walls))

    removed = ~res.keep
    print(f"removed: exact {int((res.reason == 'exact').sum()):,}, rouge {int((res.reason == 'rouge').sum()):,}")
    for k in ("case_ws", "edit1", "edit2"):
        print(f"recall {k:8s}: {removed[kinds == k].mean():.4%} of {int((kinds == k).sum()):,}")
    planted_dup = np.isin(kinds, ["case_ws", "edit1", "edit2"])
    print(f"precision vs planted duplicates: {planted_dup[removed].mean():.4%} ({int(removed.sum()):,} removed)")
    print(f"near misses kept: {(~removed[kinds == 'near_miss']).mean():.4%} of {int((kinds == 'near_miss').sum()):,}")
    flagged = masks != 0
    print(
        f"decontamination: flagged {int(flagged.sum()):,}; recall on planted {flagged[planted_rows].mean():.4%}; "
        f"precision {np.isin(np.flatnonzero(flagged), planted_rows).mean():.4%}"
    )

    # Baseline: datasketch's serial loop on a sample, extrapolated linearly (LSH insert/query are O(1) per row).
    sample = texts[: args.baseline_rows]
    rate = datasketch_rate(sample, num_perm=128, threshold=0.5)
    base_minhash = len(texts) / rate
    print(
        f"baseline datasketch MinHash+MinHashLSH serial loop (128 perms, bigrams): {rate:,.0f} rows/s on the first "
        f"{len(sample):,} rows -> extrapolated {base_minhash:.0f}s for {len(texts):,} rows (MinHash/LSH only: no "
        f"exact pass, no ROUGE-L, no decontamination)"
    )
    print(f"RESULT rows={len(texts):,} wall={wall:.1f}s (median of {args.repeats}) peak_rss={peak_rss_gb():.2f}GB "
          f"baseline_extrapolated={base_minhash:.0f}s ratio={base_minhash / wall:.1f}x")  # fmt: skip

    # The LSH result against the O(N^2) rule on a sample with a high share of planted duplicates and near misses.
    check = make_rows(args.check_rows, seed=args.seed + 1, case_ws=0.05, edits=0.05, near_miss=0.02)["instruction"]
    t = time.perf_counter()
    brute = brute_force_rouge_keep(check)
    t_brute = time.perf_counter() - t
    for label, sample, bands, rows in (
        ("sample", check, 32, 4),
        ("sample", check, 42, 3),
        ("short-row sample", short_rows(4000, args.seed), 32, 4),
    ):
        if sample is not check:
            t = time.perf_counter()
            brute = brute_force_rouge_keep(sample)
            t_brute = time.perf_counter() - t
        lsh = dedup_texts(sample, DedupConfig(num_proc=1, bands=bands, rows=rows)).keep
        both = (~brute & ~lsh).sum()
        print(
            f"brute-force check on a {len(sample):,}-row {label} (bands={bands}, rows={rows}): rule removes "
            f"{int((~brute).sum())}, LSH removes {int((~lsh).sum())}; recall {both / max(1, (~brute).sum()):.4%}, "
            f"precision {both / max(1, (~lsh).sum()):.4%}; identical={bool(np.array_equal(brute, lsh))} "
            f"(brute force {t_brute:.1f}s with the exact overlap bound)"
        )


def short_rows(n: int, seed: int) -> list[str]:
    """3-11-word rows over a 5K vocabulary, every 4th followed by a one-word edit of itself (the hard case for
    bigram MinHash: one edit changes most of a short row's bigrams)."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(5000)] + "the a of to and in is for what how".split() * 50
    out = []
    for i in range(n):
        row = [words[k] for k in rng.integers(0, len(words), int(rng.integers(3, 12)))]
        out.append(" ".join(row))
        if i % 4 == 0:
            edited, pos = list(row), int(rng.integers(0, len(row)))
            op = int(rng.integers(0, 3))
            if op == 0:
                edited[pos] = f"new{i}"
            elif op == 1:
                edited.insert(pos, f"new{i}")
            elif len(edited) > 3:
                del edited[pos]
            out.append(" ".join(edited))
    return out


if __name__ == "__main__":
    main()
