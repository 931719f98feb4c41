"""``lamini-lm compare RESULTS...``: models side by side, as a table and a PNG with the paper's averages.

Example:
    $ lamini-lm compare eval/lamini-gpt-124m eval/gpt2 --output comparison.png --reference LaMini-GPT-124M
"""

from __future__ import annotations

import dataclasses
import logging

__all__ = ["CompareConfig", "main"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class CompareConfig:
    """Settings of ``lamini-lm compare``."""

    results: list[str] = dataclasses.field(
        default=None, metadata={"help": "results.json files or folders holding one (also the leading arguments)"}
    )
    labels: list[str] = dataclasses.field(
        default=None, metadata={"help": "a name per results file (default: the model folder names)"}
    )
    output: str = dataclasses.field(default="comparison.png", metadata={"help": "the PNG to write"})
    table: str = dataclasses.field(
        default=None, metadata={"help": "also write the table here (.md for Markdown, .csv for CSV)"}
    )
    reference: list[str] = dataclasses.field(
        default=None,
        metadata={
            "help": "paper models drawn as reference lines ('all' for every one; default: those whose "
            "name matches a compared model)"
        },
    )


def main(argv: list[str] | None = None, prog: str = "lamini-lm compare") -> int:
    """Print a task x model table of results files and plot them beside the paper's averages."""
    from pathlib import Path

    from lamini_lm.config import parse_config
    from lamini_lm.evaluation.harness import leading_positionals
    from lamini_lm.evaluation.plots import plot_comparison
    from lamini_lm.evaluation.results import format_table, load_results, results_frame

    argv = leading_positionals(list(argv) if argv is not None else [], "--results")
    (cfg,) = parse_config([CompareConfig], argv, prog=prog, description=main.__doc__)
    if not cfg.results:
        raise SystemExit(f"{prog}: give one or more results files (written by `lamini-lm evaluate`)")
    if cfg.labels and len(cfg.labels) != len(cfg.results):
        raise SystemExit(f"{prog}: {len(cfg.labels)} labels for {len(cfg.results)} results files")
    results = [load_results(p) for p in cfg.results]
    markdown = format_table(results, cfg.labels)
    print(markdown)
    if cfg.table:
        table = Path(cfg.table)
        table.parent.mkdir(parents=True, exist_ok=True)
        if table.suffix == ".csv":
            results_frame(results, cfg.labels).to_csv(table, index_label="task")
        else:
            table.write_text(markdown + "\n", encoding="utf-8")
        print(f"wrote {table}")
    print(f"wrote {plot_comparison(results, cfg.output, cfg.labels, cfg.reference)}")
    return 0
