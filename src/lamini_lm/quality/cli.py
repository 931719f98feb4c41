"""``lamini-lm dedup | filter | decontaminate | stats | push-dataset``: thin wrappers over the Python API.

Each reads a dataset (a ``save_to_disk`` folder, a ``.parquet`` or a ``.jsonl`` file), writes its output folder
atomically and a JSON report beside it (``OUTPUT.report.json`` unless ``--report`` says otherwise).

Usage:
    lamini-lm dedup --input runs/responses --output runs/dedup
    lamini-lm filter --input runs/dedup --output runs/filtered
    lamini-lm decontaminate --input runs/filtered --output runs/clean            # the 15 eval sets from the Hub
    lamini-lm decontaminate --input runs/filtered --output runs/clean --eval_files sciq=sciq_test.jsonl
    lamini-lm stats --input runs/clean --output runs/stats
    lamini-lm push-dataset --input runs/clean --release_dir runs/release \\
        --reports runs/dedup.report.json,runs/filtered.report.json,runs/clean.report.json --repo_id me/my-lamini
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field

from lamini_lm.config import parse_config
from lamini_lm.io import load_table, save_dataset, write_json
from lamini_lm.quality.dedup import DedupConfig
from lamini_lm.quality.filters import FilterConfig

__all__ = ["decontaminate_main", "dedup_main", "filter_main", "push_dataset_main", "stats_main"]

logger = logging.getLogger(__name__)


@dataclass
class DataArgs:
    """Where a stage reads and writes."""

    input: str = field(default=None, metadata={"help": "dataset to read: save_to_disk folder, .parquet or .jsonl"})
    output: str = field(default=None, metadata={"help": "folder to write (save_to_disk), replaced atomically"})
    report: str = field(default="", metadata={"help": "JSON report path (default: OUTPUT.report.json)"})


@dataclass
class DecontaminateArgs:
    """Settings of ``lamini-lm decontaminate``."""

    tasks: str = field(default="", metadata={"help": "comma-separated eval tasks (default: all 15 of SPEC 7)"})
    eval_files: str = field(
        default="", metadata={"help": "task=path pairs (comma-separated) read from local files instead of the Hub"}
    )
    ngram: int = field(default=13, metadata={"help": "n-gram length, in words"})
    columns: str = field(default="instruction,response", metadata={"help": "comma-separated text columns checked"})
    action: str = field(default="remove", metadata={"help": "'remove' flagged rows or 'tag' them (contaminated)"})


@dataclass
class StatsArgs:
    """Settings of ``lamini-lm stats``."""

    input: str = field(default=None, metadata={"help": "dataset to read: save_to_disk folder, .parquet or .jsonl"})
    output: str = field(default=None, metadata={"help": "folder for stats.json and the PNG plots"})
    embed: str = field(default="auto", metadata={"help": "diversity map embedding: auto, minilm, tfidf or none"})
    max_points: int = field(default=2000, metadata={"help": "instructions sampled for the diversity map"})


@dataclass
class PushArgs:
    """Settings of ``lamini-lm push-dataset``."""

    input: str = field(default=None, metadata={"help": "dataset to publish: save_to_disk folder, .parquet or .jsonl"})
    release_dir: str = field(default=None, metadata={"help": "folder to build: data/*.parquet, plots/, README.md"})
    repo_id: str = field(default="", metadata={"help": "Hub dataset repo to push to (empty: only build the folder)"})
    reports: str = field(default="", metadata={"help": "comma-separated JSON reports of dedup/filter/decontaminate"})
    pretty_name: str = field(default="LaMini-style instructions", metadata={"help": "dataset name on the card"})
    private: bool = field(default=False, metadata={"help": "create the repo as private"})
    embed: str = field(default="auto", metadata={"help": "diversity map embedding: auto, minilm, tfidf or none"})


def _require(**values: str | None) -> None:
    missing = [f"--{k}" for k, v in values.items() if not v]
    if missing:
        raise SystemExit(f"missing required setting(s): {', '.join(missing)}")


def _finish(ds, report: dict, args: DataArgs, stage: str) -> int:
    report["stage"], report["input"] = stage, args.input
    save_dataset(ds, args.output, overwrite=True)
    path = args.report or args.output.rstrip("/") + ".report.json"
    write_json(report, path)
    print(f"{report.get('rows_in', '?')} rows in, {len(ds)} rows out -> {args.output} (report: {path})")
    return 0


def _config_stage(argv: list[str] | None, prog: str, config_cls: type, description: str, run, stage: str) -> int:
    """A stage that is one ``run(ds, config) -> (ds, report)`` call: parse, load, run, save the rows and report."""
    args, cfg = parse_config([DataArgs, config_cls], argv, prog=prog, description=description)
    _require(input=args.input, output=args.output)
    ds, report = run(load_table(args.input), cfg)
    return _finish(ds, report, args, stage)


def dedup_main(argv: list[str] | None = None, prog: str = "lamini-lm dedup") -> int:
    from lamini_lm.quality.dedup import dedup

    return _config_stage(argv, prog, DedupConfig, "exact, MinHash and ROUGE-L dedup", dedup, "dedup")


def filter_main(argv: list[str] | None = None, prog: str = "lamini-lm filter") -> int:
    from lamini_lm.quality.filters import filter_rows

    return _config_stage(argv, prog, FilterConfig, "heuristic row filters", filter_rows, "filters")


def decontaminate_main(argv: list[str] | None = None, prog: str = "lamini-lm decontaminate") -> int:
    from lamini_lm.quality.decontaminate import EVAL_SETS, decontaminate

    args, cfg = parse_config(
        [DataArgs, DecontaminateArgs], argv, prog=prog, description="n-gram decontamination against the eval sets"
    )
    _require(input=args.input, output=args.output)
    files = {}
    for pair in filter(None, (p.strip() for p in cfg.eval_files.split(","))):
        task, sep, path = pair.partition("=")
        if not sep:
            raise SystemExit(f"--eval_files: expected task=path, got {pair!r}")
        files[task.strip()] = path.strip()
    # --tasks picks the tasks (default: those given files, else all 15); a task without a file loads from the Hub.
    tasks = [t.strip() for t in cfg.tasks.split(",") if t.strip()] or list(files) or list(EVAL_SETS)
    sources = {t: files.get(t) for t in tasks}
    ds, report = decontaminate(
        load_table(args.input),
        sources,
        ngram=cfg.ngram,
        columns=[c.strip() for c in cfg.columns.split(",") if c.strip()],
        action=cfg.action,
    )
    return _finish(ds, report, args, "decontamination")


def stats_main(argv: list[str] | None = None, prog: str = "lamini-lm stats") -> int:
    from lamini_lm.quality.stats import compute_stats

    (args,) = parse_config([StatsArgs], argv, prog=prog, description="statistics and PNG plots of a dataset")
    _require(input=args.input, output=args.output)
    stats = compute_stats(load_table(args.input), args.output, embed=args.embed, max_points=args.max_points)
    write_json(stats, os.path.join(args.output, "stats.json"))
    print(f"{stats['rows']} rows; plots: {', '.join(stats['plots'].values())} -> {args.output}")
    return 0


def push_dataset_main(argv: list[str] | None = None, prog: str = "lamini-lm push-dataset") -> int:
    from lamini_lm.quality.card import build_release, push_dataset

    (args,) = parse_config([PushArgs], argv, prog=prog, description="build parquet + card (+ plots) and push it")
    _require(input=args.input, release_dir=args.release_dir)
    reports = {}
    for path in filter(None, (p.strip() for p in args.reports.split(","))):
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
        reports[report.get("stage") or os.path.basename(path).split(".")[0]] = report
    build_release(
        load_table(args.input), args.release_dir, pretty_name=args.pretty_name, reports=reports, embed=args.embed
    )
    print(f"release folder: {args.release_dir}")
    if args.repo_id:
        url = push_dataset(args.release_dir, args.repo_id, private=args.private)
        print(f"pushed to {args.repo_id}: {url}")
    logger.debug("push-dataset settings: %s", asdict(args))
    return 0
