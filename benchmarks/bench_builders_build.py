"""Wall time of `build_instructions` (every config of `lamini_lm/instructions` into the cache) for a generation run
of N rows, against the hand-written `datasets` way of making the same splits: `load_from_disk`, `filter` out failed
rows, one `filter` per source, `save_to_disk` each. Also the time of a rebuild with unchanged inputs (cache hit).

Usage:
    python benchmarks/bench_builders_build.py                 # 1M rows, 3 repeats
    python benchmarks/bench_builders_build.py --rows 100000 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from _machine import median_of, print_machine  # noqa: E402
from bench_builders_memory import make_run  # noqa: E402


def time_build(run: str, cache: str) -> float:
    from lamini_lm.builders import build_instructions

    shutil.rmtree(cache, ignore_errors=True)
    start = time.perf_counter()
    build_instructions(generated=[run], cache_dir=cache)
    return time.perf_counter() - start


def time_rebuild(run: str, cache: str) -> float:
    from lamini_lm.builders import build_instructions

    start = time.perf_counter()
    build_instructions(generated=[run], cache_dir=cache)
    return time.perf_counter() - start


def time_filters(run: str, out: str) -> float:
    import datasets

    from lamini_lm.records import LAMINI_COLUMNS, InstructionSource

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    full = datasets.load_from_disk(run)
    full.save_to_disk(os.path.join(out, "generation"))
    ok = full.filter(lambda b: [e is None for e in b["error"]], batched=True).select_columns(list(LAMINI_COLUMNS))
    ok.save_to_disk(os.path.join(out, "all"))
    for source in InstructionSource:
        part = ok.filter(lambda b, s=source.value: [v == s for v in b["instruction_source"]], batched=True)
        part.save_to_disk(os.path.join(out, source.value))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print_machine(("datasets", "pyarrow"))
    import datasets

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as workdir:
        run = os.path.join(workdir, "run")
        make_run(run, args.rows)
        cache, out = os.path.join(workdir, "cache"), os.path.join(workdir, "filters")
        os.environ["HF_DATASETS_CACHE"] = os.path.join(workdir, "hf")  # filter() caches land here, not in ~/.cache
        build, builds = median_of(lambda: time_build(run, cache), args.repeats)
        rebuild, rebuilds = median_of(lambda: time_rebuild(run, cache), args.repeats)
        filters, filterss = median_of(lambda: time_filters(run, out), args.repeats)
    for label, median, values in (
        ("build_instructions (9 configs)", build, builds),
        ("rebuild, same inputs", rebuild, rebuilds),
        ("load_from_disk+filter+save", filters, filterss),
    ):
        repeats = ", ".join(f"{v:.2f}" for v in values)
        print(f"rows={args.rows:,}  {label:<31} median {median:8.2f} s  (repeats {repeats})")
    print(f"rows={args.rows:,}  build / filters = {build / filters:.2f}x")


if __name__ == "__main__":
    main()
