"""``lamini-lm compare RESULTS...``: models side by side, as a table and a PNG with the paper's averages.

Example:
    $ lamini-lm compare eval/lamini-gpt-124m eval/gpt2 --output comparison.png --reference LaMini-GPT-124M
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from lamini_lm.errors import UsageError

__all__ = ["CompareConfig", "main", "run_compare"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class CompareConfig:
    """Settings of ``lamini-lm compare``."""

    results: list[str] = dataclasses.field(
        default=None,
        metadata={"required": True, "help": "results.json files or folders holding one (also the leading arguments)"},
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

    def __post_init__(self):
        from lamini_lm.config import check_required

        check_required(self)
        if self.labels and len(self.labels) != len(self.results):
            raise UsageError(f"--labels: {len(self.labels)} labels for {len(self.results)} results files")


def run_compare(cfg: CompareConfig) -> dict[str, Path]:
    """Print the task x model table of ``cfg.results`` and write the PNG (and the table if asked); return paths."""
    from lamini_lm.evaluation.plots import plot_comparison
    from lamini_lm.evaluation.results import format_table, load_results, results_frame
    from lamini_lm.io import write_text_atomic

    results = [load_results(p) for p in cfg.results]
    markdown = format_table(results, cfg.labels)
    print(markdown)
    written = {}
    if cfg.table:
        table = Path(cfg.table)
        if table.suffix == ".csv":
            write_text_atomic(table, results_frame(results, cfg.labels).to_csv(index_label="task"))
        else:
            write_text_atomic(table, markdown + "\n")
        written["table"] = table
    written["plot"] = Path(plot_comparison(results, cfg.output, cfg.labels, cfg.reference))
    return written


def main(argv: list[str] | None = None, prog: str = "lamini-lm compare") -> int:
    """Print a task x model table of results files and plot them beside the paper's averages."""
    from lamini_lm.config import StageParser

    parser = StageParser(
        [CompareConfig],
        prog=prog,
        description=main.__doc__,
        positionals=("results",),
        examples="  lamini-lm compare runs/gpt/eval runs/t5/eval --table comparison.md --reference all",
    )
    (cfg,) = parser.parse(argv)
    for path in run_compare(cfg).values():
        print(f"wrote {path}")
    return 0
