"""Dedup + decontamination end to end, as `lamini-lm` runs them, at 1M to 25M rows: time, peak RSS, accuracy.

For each size, writes a LaMini-like JSONL corpus (instruction, response, instruction_source; 2% case/space
variants, 2% one/two-word edits, 0.5% near misses, eval-set spans planted in ~200 rows per million) and 15 synthetic
evaluation sets the size of SPEC 7's, then times the two stages as processes:

    lamini-lm dedup --input corpus.jsonl --output dedup --max_memory 4GB
    lamini-lm decontaminate --input dedup --output clean --eval_files task=... (instruction and response checked)

and prints wall seconds, cost per row and peak RSS (the stage process; and the sum over it and its workers, sampled
every 0.2 s: an upper bound, forked workers share pages), then recall/precision against the planted labels. Sizes up
to 2.58M rows are repeated (--repeats, median quoted), larger ones run once. Then, once: datasketch's serial
MinHashLSH loop on a sample (the baseline, extrapolated, said so), rensa's Rust MinHash against the numpy signatures
on the same rows (time and candidate recall at the same 32x4 banding), and the LSH result against the exact O(N^2)
ROUGE-L rule on 5,000-row samples. A PNG plots time and RSS against rows.

Usage:
    python benchmarks/bench_dedup.py --sizes 200000 --repeats 1        # iterate
    python benchmarks/bench_dedup.py --sizes 1000000 2580000 10000000 25000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from _machine import print_machine  # noqa: E402
from synthetic_instructions import make_rows  # noqa: E402

# SPEC 7: documents per evaluated split
EVAL_SIZES = {
    "openbookqa": 500,
    "sciq": 1000,
    "race": 1045,
    "arc_challenge": 1172,
    "piqa": 1838,
    "record": 10000,
    "sst2": 872,
    "mrpc": 408,
    "rte": 277,
    "mnli": 9815,
    "mnli_mismatch": 9832,
    "wsc273": 273,
    "winogrande": 1267,
    "wic": 638,
    "hellaswag": 10042,
}
CHUNK = 1_000_000
KINDS = ["", "case_ws", "edit1", "edit2", "near_miss", "contaminated"]  # planted kinds, stored as int8 codes


def eval_sets(seed: int) -> dict[str, list[str]]:
    """Synthetic eval documents (passage-like) per task, from another seed of the generator."""
    rows = make_rows(sum(EVAL_SIZES.values()), seed=seed + 1000, case_ws=0, edits=0, near_miss=0)["instruction"]
    out, at = {}, 0
    for task, n in EVAL_SIZES.items():
        out[task] = rows[at : at + n]
        at += n
    return out


def write_corpus(path: Path, n: int, seed: int, evals: dict[str, list[str]], per_million: int):
    """JSONL of ``n`` rows, generated 1M rows at a time (planted duplicates sit inside their chunk); returns the
    counts per kind and each row's kind code (int8, see KINDS)."""
    rng = np.random.default_rng(seed)
    docs = [d for ts in evals.values() for d in ts if len(d.split()) >= 16]
    counts: dict[str, int] = {}
    codes = np.zeros(n, dtype=np.int8)
    written = 0
    with open(path, "w") as f:
        for c, lo in enumerate(range(0, n, CHUNK)):
            m = min(CHUNK, n - lo)
            data = make_rows(m, seed=seed + 7 * c)
            resp = make_rows(m, seed=seed + 7 * c + 3, case_ws=0, edits=0, near_miss=0)["instruction"]
            texts, kinds = data["instruction"], list(data["kind"])
            origins = np.array(data["dup_of"])
            free = np.setdiff1d(np.flatnonzero(np.array(kinds) == ""), origins[origins >= 0])
            for r in rng.choice(free, size=max(1, per_million * m // CHUNK), replace=False).tolist():
                words = docs[int(rng.integers(len(docs)))].split()
                start = int(rng.integers(0, len(words) - 15))
                texts[r] = "Answer the question: " + " ".join(words[start : start + 15])
                kinds[r] = "contaminated"
            lines = [
                json.dumps(
                    {"instruction": t, "response": f"{r} {r}", "instruction_source": s, "bench_id": lo + i, "kind": k}
                )
                for i, (t, r, s, k) in enumerate(zip(texts, resp, data["instruction_source"], kinds))
            ]
            f.write("\n".join(lines) + "\n")
            for k in kinds:
                counts[k or "base"] = counts.get(k or "base", 0) + 1
            codes[lo : lo + m] = [KINDS.index(k) for k in kinds]
            written += m
    return counts, codes


def run_stage(args: list) -> tuple[float, float, float, str]:
    """Run ``lamini-lm ARGS``; returns (wall s, peak RSS GB of the process, peak RSS GB of its tree, stdout).

    The process's peak is its VmHWM (read every 0.2 s until it exits; ru_maxrss would carry this benchmark's own
    peak across fork and exec); the tree's is the largest sampled sum of the RSS of it and its workers (an upper
    bound: forked workers share pages).
    """
    import psutil

    cmd = [sys.executable, "-m", "lamini_lm.cli", *map(str, args)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = {"hwm": 0, "tree": 0}
    done = threading.Event()

    def sample():
        p = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                with open(f"/proc/{proc.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak["hwm"] = max(peak["hwm"], int(line.split()[1]) * 1024)
                rss = p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))
                peak["tree"] = max(peak["tree"], rss)
            except (OSError, psutil.Error):
                pass
            time.sleep(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    th.join()
    if proc.returncode:
        raise SystemExit(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{err[-3000:]}")
    return wall, peak["hwm"] / 2**30, peak["tree"] / 2**30, out


def kept_ids(folder: Path) -> np.ndarray:
    import pyarrow.dataset as pds

    t = pds.dataset(sorted((folder / "data").glob("*.parquet")), format="parquet").to_table(["bench_id"])
    return t.column("bench_id").to_numpy()


def accuracy(n: int, codes: np.ndarray, dedup_dir: Path, clean_dir: Path) -> list[str]:
    kinds = np.array(KINDS, dtype="<U12")[codes]
    after_dedup = kept_ids(dedup_dir)
    after_clean = kept_ids(clean_dir)
    removed = np.ones(n, dtype=bool)
    removed[after_dedup] = False
    flagged = np.zeros(n, dtype=bool)
    flagged[np.setdiff1d(after_dedup, after_clean)] = True
    lines = []
    for k in ("case_ws", "edit1", "edit2"):
        lines.append(f"recall {k:8s}: {removed[kinds == k].mean():.4%} of {int((kinds == k).sum()):,}")
    planted = np.isin(kinds, ["case_ws", "edit1", "edit2"])
    lines.append(f"precision vs planted duplicates: {planted[removed].mean():.4%} ({int(removed.sum()):,} removed)")
    lines.append(
        f"near misses kept: {(~removed[kinds == 'near_miss']).mean():.4%} of {int((kinds == 'near_miss').sum()):,}"
    )
    cont = kinds == "contaminated"
    lines.append(
        f"decontamination: flagged {int(flagged.sum()):,}; recall on planted {flagged[cont & ~removed].mean():.4%}; "
        f"precision {cont[flagged].mean() if flagged.any() else 0:.4%}"
    )
    return lines


def datasketch_rate(texts: list[str], num_perm: int = 128, threshold: float = 0.5) -> float:
    """Rows/s of the plain serial loop: MinHash of each row's word bigrams, query, insert (datasketch's docs)."""
    from datasketch import MinHash, MinHashLSH

    from lamini_lm.quality.text import rouge_tokens

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    t0 = time.perf_counter()
    for i, text in enumerate(texts):
        words = rouge_tokens(text)
        m = MinHash(num_perm=num_perm)
        m.update_batch([f"{a} {b}".encode() for a, b in zip(words, words[1:])] or [w.encode() for w in words])
        lsh.query(m)
        lsh.insert(str(i), m)
    return len(texts) / (time.perf_counter() - t0)


def rensa_vs_numpy(n: int, seed: int) -> None:
    """Signatures of the same rows (same shingles, 128 permutations, 32x4 bands): time and candidate recall."""
    import itertools

    from lamini_lm.quality.minhash import band_keys, candidate_pairs
    from lamini_lm.quality.text import _mix64, ngram_hashes, tokenize_texts

    data = make_rows(n, seed=seed + 5)
    tok = tokenize_texts(data["instruction"])
    kinds, origin = np.array(data["kind"]), np.array(data["dup_of"])
    edits = np.flatnonzero(np.isin(kinds, ["edit1", "edit2"]))

    def recall(keys):
        pairs = candidate_pairs(tok, keys=keys)
        have = set((pairs[:, 0] * n + pairs[:, 1]).tolist())
        return np.mean([int(origin[j]) * n + int(j) in have for j in edits.tolist()]), len(pairs)

    t0 = time.perf_counter()
    keys_np = band_keys(tok, num_proc=2)
    t_np = time.perf_counter() - t0
    try:
        import rensa
    except ImportError:
        print("rensa: not installed (pip install rensa)")
        return
    # the same shingles, flat per row: word bigrams, then "^first" and "last$"
    h, rows = ngram_hashes(tok, 2)
    ne = np.flatnonzero(tok.lengths > 0)
    first = _mix64(tok.token_hash[tok.ids[tok.offsets[ne]]] ^ np.uint64(0x2545F4914F6CDD1D))
    last = _mix64(tok.token_hash[tok.ids[tok.offsets[ne + 1] - 1]] ^ np.uint64(0x7FB5D329728EA185))
    allh = np.concatenate([h, first, last])
    allr = np.concatenate([rows, ne, ne])
    order = np.argsort(allr, kind="stable")
    flat = np.ascontiguousarray(allh[order])
    offsets = np.zeros(n + 1, dtype=np.uint64)
    np.cumsum(np.bincount(allr, minlength=n), out=offsets[1:])
    t0 = time.perf_counter()
    matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(flat, offsets, num_perm=128, seed=42)
    t_digest = time.perf_counter() - t0
    sig = np.fromiter(itertools.chain.from_iterable(matrix.to_rows()), dtype=np.uint32, count=n * 128).reshape(n, 128)
    t_rensa = time.perf_counter() - t0
    keys_r = np.empty((32, n), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for b in range(32):
            acc = np.full(n, b, dtype=np.uint64)
            for r in range(4):
                acc = _mix64(acc * np.uint64(0x9E3779B97F4A7C15) + sig[:, b * 4 + r].astype(np.uint64))
            keys_r[b] = acc
    (rec_np, c_np), (rec_r, c_r) = recall(keys_np), recall(keys_r)
    print(
        f"signatures of {n:,} rows (128 perms, same shingles): numpy band_keys (2 processes) {t_np:.2f}s; "
        f"rensa {rensa.__version__ if hasattr(rensa, '__version__') else ''} RMinHash digest matrix {t_digest:.2f}s "
        f"+ to_rows into numpy {t_rensa - t_digest:.2f}s = {t_rensa:.2f}s ({t_np / t_rensa:.2f}x numpy)"
    )
    print(
        f"  candidate recall of planted one/two-word edits at 32x4: numpy {rec_np:.4%} ({c_np:,} pairs), "
        f"rensa {rec_r:.4%} ({c_r:,} pairs)"
    )


def brute_force_checks(seed: int, check_rows: int) -> None:
    from lamini_lm.quality.dedup import DedupConfig, dedup_texts
    from rouge_oracle import brute_force_rouge_keep

    check = make_rows(check_rows, seed=seed + 1, case_ws=0.05, edits=0.05, near_miss=0.02)["instruction"]
    for label, sample, bands, rows in (
        ("sample", check, 32, 4),
        ("sample", check, 42, 3),
        ("short-row sample", short_rows(4000, seed), 32, 4),
    ):
        t = time.perf_counter()
        brute = brute_force_rouge_keep(sample)
        t_brute = time.perf_counter() - t
        lsh = dedup_texts(sample, DedupConfig(num_proc=1, bands=bands, rows=rows)).keep
        both = (~brute & ~lsh).sum()
        print(
            f"brute-force check on a {len(sample):,}-row {label} (bands={bands}, rows={rows}): rule removes "
            f"{int((~brute).sum())}, LSH removes {int((~lsh).sum())}; recall {both / max(1, (~brute).sum()):.4%}, "
            f"precision {both / max(1, (~lsh).sum()):.4%}; identical={bool(np.array_equal(brute, lsh))} "
            f"(brute force {t_brute:.1f}s)"
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


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = np.array([r["rows"] for r in results]) / 1e6
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].plot(rows, [r["dedup_s"] for r in results], "o-", label="dedup")
    axes[0].plot(rows, [r["total_s"] for r in results], "s-", label="dedup + decontaminate")
    axes[0].set(xlabel="rows (millions)", ylabel="wall seconds", title="time (read, passes, write)")
    axes[1].plot(rows, [1e6 * r["total_s"] / r["rows"] for r in results], "o-")
    axes[1].set(xlabel="rows (millions)", ylabel="µs per row", title="cost per row", ylim=(0, None))
    axes[2].plot(rows, [r["rss_gb"] for r in results], "o-", label="stage process")
    axes[2].plot(rows, [r["rss_tree_gb"] for r in results], "s--", label="process + workers (upper bound)")
    axes[2].set(xlabel="rows (millions)", ylabel="peak RSS (GB)", title="memory (--max_memory 4GB)", ylim=(0, None))
    for ax in (axes[0], axes[2]):
        ax.legend(fontsize=8)
    fig.suptitle(f"lamini-lm dedup + decontaminate, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--sizes", type=int, nargs="*", default=[1_000_000, 2_580_000], help="row counts (none: extras only)"
    )
    p.add_argument("--repeats", type=int, default=3, help="runs per size up to 2.58M rows (median quoted)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-memory", default="4GB")
    p.add_argument("--num-proc", type=int, default=2)
    p.add_argument("--contaminated", type=int, default=200, help="rows given an eval-set span, per million")
    p.add_argument("--baseline-rows", type=int, default=20_000, help="rows timed for the datasketch loop")
    p.add_argument("--rensa-rows", type=int, default=200_000)
    p.add_argument("--check-rows", type=int, default=5000, help="sample compared with the brute-force rule")
    p.add_argument("--no-extras", action="store_true", help="skip the datasketch, rensa and brute-force parts")
    p.add_argument("--workdir", default=None, help="where corpora are written (default: a temporary folder)")
    p.add_argument("--keep-corpus", action="store_true", help="keep each corpus (and its labels) to reuse it")
    p.add_argument("--prepare-only", action="store_true", help="write the corpora (with --keep-corpus) and stop")
    p.add_argument("--plot", default=str(HERE / "bench_dedup.png"))
    p.add_argument("--results", default=None, help="JSON file merging the medians of several invocations (plotted)")
    args = p.parse_args()

    print_machine(("numpy", "pyarrow", "datasketch", "rensa", "ray", "datasets"))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-dedup-"))
    work.mkdir(parents=True, exist_ok=True)
    evals = eval_sets(args.seed)
    eval_args = []
    for task, docs in evals.items():
        f = work / f"{task}.jsonl"
        f.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
        eval_args.append(f"{task}={f}")
    results = []
    for n in args.sizes:
        corpus = work / f"corpus-{n}.jsonl"
        labels = work / f"corpus-{n}.labels.npz"  # --keep-corpus: the planted labels, to reuse the corpus
        t = time.perf_counter()
        params = json.dumps({"seed": args.seed, "contaminated": args.contaminated})
        saved = np.load(labels) if args.keep_corpus and corpus.exists() and labels.exists() else None
        if saved is not None and str(saved["params"]) == params:
            counts, kinds = json.loads(str(saved["counts"])), saved["kinds"]
            verb = "reused"
        else:
            counts, kinds = write_corpus(corpus, n, args.seed, evals, args.contaminated)
            if args.keep_corpus:
                np.savez(labels, kinds=kinds, counts=json.dumps(counts), params=params)
            verb = "written"
        print(
            f"# {n:,} rows: {corpus.stat().st_size / 1e9:.2f} GB of JSONL {verb} in {time.perf_counter() - t:.0f}s; "
            f"{counts}; load average {os.getloadavg()[0]:.2f}"
        )
        if args.prepare_only:
            continue
        repeats = args.repeats if n <= 2_580_000 else 1
        runs = []
        for rep in range(repeats):
            d, c = work / "dedup", work / "clean"
            t_d, rss_d, tree_d, out_d = run_stage(
                [
                    "dedup",
                    "--input",
                    corpus,
                    "--output",
                    d,
                    "--overwrite",
                    "--max_memory",
                    args.max_memory,
                    "--num_proc",
                    args.num_proc,
                ]
            )
            t_c, rss_c, tree_c, out_c = run_stage(
                ["decontaminate", "--input", d, "--output", c, "--overwrite", "--eval_files", *eval_args]
            )
            m = json.loads((d / "lamini_lm.json").read_text())["reports"][-1]
            runs.append(
                {
                    "rows": n,
                    "dedup_s": t_d,
                    "decon_s": t_c,
                    "total_s": t_d + t_c,
                    "rss_gb": max(rss_d, rss_c),
                    "rss_tree_gb": max(tree_d, tree_c),
                }
            )
            print(
                f"run {rep + 1}: total {t_d + t_c:.1f}s = dedup {t_d:.1f}s {m['details']['seconds_by_pass']} "
                f"(candidates {m['details']['candidates']:,}, ROUGE-L checks {m['details']['rouge_checked']:,}, "
                f"spilled {m['details']['spilled']}) + decontaminate {t_c:.1f}s; peak RSS dedup {rss_d:.2f} GB "
                f"(tree {tree_d:.2f}), decontaminate {rss_c:.2f} GB (tree {tree_c:.2f}); "
                f"load average {os.getloadavg()[0]:.2f}"
            )
            print("  " + out_d.strip().splitlines()[0] + " | " + out_c.strip().splitlines()[-2])
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        results.append(med)
        for line in accuracy(n, kinds, work / "dedup", work / "clean"):
            print("  " + line)
        if not args.keep_corpus:
            corpus.unlink()
    if args.prepare_only:
        return
    print("\n| rows | runs | dedup s | decontaminate s | total s | µs/row | peak RSS GB (process) | (+ workers) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        runs_n = args.repeats if r["rows"] <= 2_580_000 else 1
        print(
            f"| {int(r['rows']):,} | {runs_n} | {r['dedup_s']:.1f} | {r['decon_s']:.1f} | {r['total_s']:.1f} | "
            f"{1e6 * r['total_s'] / r['rows']:.1f} | {r['rss_gb']:.2f} | {r['rss_tree_gb']:.2f} |"
        )
    print(f"# load average at end: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores")
    if args.results:  # merge with earlier invocations (other sizes), keyed by rows
        path = Path(args.results)
        merged = {int(r["rows"]): r for r in (json.loads(path.read_text()) if path.exists() else [])}
        merged.update({int(r["rows"]): {**r, "runs": args.repeats if r["rows"] <= 2_580_000 else 1} for r in results})
        path.write_text(json.dumps([merged[k] for k in sorted(merged)], indent=1))
        results = [merged[k] for k in sorted(merged)]
    if args.plot and results:
        plot(results, Path(args.plot))
    if not args.no_extras:
        sample = make_rows(args.baseline_rows, seed=args.seed)["instruction"]
        rate = datasketch_rate(sample)
        n = results[-1]["rows"] if results else 2_580_000
        print(
            f"baseline datasketch MinHash+MinHashLSH serial loop (128 perms, bigrams): {rate:,.0f} rows/s on "
            f"{len(sample):,} rows -> extrapolated {n / rate:.0f}s for {int(n):,} rows (MinHash/LSH only)"
        )
        rensa_vs_numpy(args.rensa_rows, args.seed)
        brute_force_checks(args.seed, args.check_rows)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
