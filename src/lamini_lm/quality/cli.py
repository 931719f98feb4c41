"""``lamini-lm dedup | filter | decontaminate | stats | push-dataset``: parse the stage's dataclasses, call its
``run_*`` function (:mod:`lamini_lm.quality.stages`, :mod:`lamini_lm.publishing.dataset`), print a few lines.

Each stage reads a dataset (a ``save_to_disk`` folder, a release folder, a ``.parquet`` or a ``.jsonl`` file) and
writes an artifact folder with a ``lamini_lm.json`` manifest holding every step's report.

Usage:
    lamini-lm dedup --input runs/responses --output runs/dedup
    lamini-lm dedup --input rows.jsonl --output runs/dedup --engine ray          # Ray Data (RAY_ADDRESS)
    lamini-lm filter --input runs/dedup --output runs/filtered
    lamini-lm decontaminate --input runs/filtered --output runs/clean            # the 15 eval sets from the Hub
    lamini-lm decontaminate --input runs/filtered --output runs/clean --eval_files sciq=sciq_test.jsonl
    lamini-lm stats --input runs/clean --output runs/stats
    lamini-lm push-dataset --input runs/clean --release_dir runs/release --repo_id me/my-lamini
"""

from __future__ import annotations

from lamini_lm.config import StageParser

__all__ = ["decontaminate_main", "dedup_main", "filter_main", "stats_main"]


def _print_step(report, output: str) -> int:
    print(report.summary())
    print(f"-> {output} (report in {output}/lamini_lm.json)")
    return 0


def dedup_main(argv: list[str] | None = None, prog: str = "lamini-lm dedup") -> int:
    from lamini_lm.quality.dedup import DedupConfig
    from lamini_lm.quality.stages import StageIO, run_dedup

    io, config = StageParser(
        [StageIO, DedupConfig],
        prog,
        "Drop exact duplicates, then near duplicates (ROUGE-L above --threshold with an earlier kept row, checked on "
        "MinHash LSH candidates).",
        examples=f"  {prog} --input runs/responses --output runs/dedup\n"
        f"  {prog} --input rows.jsonl --output runs/dedup --threshold 0.8 --no_exact\n"
        f"  {prog} --input data/ --output runs/dedup --engine ray      # Ray Data: RAY_ADDRESS, else a local Ray\n"
        f"  {prog} --input rows.jsonl --output runs/dedup --max_memory 8GB",
    ).parse(argv)
    return _print_step(run_dedup(io, config), io.output)


def filter_main(argv: list[str] | None = None, prog: str = "lamini-lm filter") -> int:
    from lamini_lm.quality.filters import FilterConfig
    from lamini_lm.quality.stages import StageIO, run_filter

    io, config = StageParser(
        [StageIO, FilterConfig],
        prog,
        "Drop rows by the Self-Instruct/Alpaca heuristics (length, blacklist, leading punctuation, non-ASCII start) "
        "and bad responses (empty, refusal, echo).",
        examples=f"  {prog} --input runs/dedup --output runs/filtered\n"
        f"  {prog} --input runs/dedup --output runs/filtered --no_refusal --blacklist_words image video",
    ).parse(argv)
    return _print_step(run_filter(io, config), io.output)


def decontaminate_main(argv: list[str] | None = None, prog: str = "lamini-lm decontaminate") -> int:
    from lamini_lm.quality.decontaminate import DecontaminateConfig
    from lamini_lm.quality.stages import StageIO, run_decontaminate

    io, config = StageParser(
        [StageIO, DecontaminateConfig],
        prog,
        "Remove (or tag) rows sharing a word n-gram with the evaluation sets of the paper's 15 tasks, read from the "
        "Hub or from local files (--eval_files, works offline).",
        examples=f"  {prog} --input runs/filtered --output runs/clean\n"
        f"  {prog} --input runs/filtered --output runs/clean --eval_files sciq=sciq_test.jsonl rte=rte.parquet\n"
        f"  {prog} --input runs/filtered --output runs/tagged --tasks sciq piqa --action tag --columns instruction",
    ).parse(argv)
    report = run_decontaminate(io, config)
    flagged = {t: c["flagged"] for t, c in report.details["tasks"].items() if c["flagged"]}
    print(f"flagged by task: {flagged or 'none'}")
    return _print_step(report, io.output)


def stats_main(argv: list[str] | None = None, prog: str = "lamini-lm stats") -> int:
    from lamini_lm.quality.stages import StatsConfig, run_stats

    (config,) = StageParser(
        [StatsConfig],
        prog,
        "Statistics (rows and lengths per source, verb-noun pairs, tokens, cost) and PNG plots of a dataset.",
        examples=f"  {prog} --input runs/clean --output runs/stats --embed tfidf",
    ).parse(argv)
    stats = run_stats(config)
    print(f"{stats['rows']:,} rows; plots: {', '.join(stats['plots'].values()) or 'none'}")
    print(f"-> {config.output} (stats.json, lamini_lm.json)")
    return 0
