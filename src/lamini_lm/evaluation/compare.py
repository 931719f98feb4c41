"""``lamini-lm compare RESULTS...``: models side by side and beside the paper's numbers, as a table and a PNG.

The paper's columns are its per-task numbers (``lamini_lm.paper.PAPER_SCORES``: ten models, base models
included) and its averages; an average over fewer than the 15 tasks is labelled with the tasks it covers and
set beside the paper's numbers over the same tasks.

Example:
    $ lamini-lm compare eval/lamini-gpt-1.5b eval/gpt2-xl --table comparison.md
    $ lamini-lm compare eval/* --output comparison.png --reference all
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
            "help": "paper models shown beside yours, in the table and the plot ('all' for every one; default: "
            "those whose name or Hub id matches a compared model, e.g. gpt2-xl -> GPT-2-XL)"
        },
    )

    def __post_init__(self):
        from lamini_lm.config import check_required

        check_required(self)
        if self.labels and len(self.labels) != len(self.results):
            raise UsageError(f"--labels: {len(self.labels)} labels for {len(self.results)} results files")
        if self.reference:
            from lamini_lm.paper import PAPER_AVERAGES, reference_models

            try:
                reference_models([], self.reference, PAPER_AVERAGES)
            except ValueError as e:
                raise UsageError(f"--reference: {e}") from None


def run_compare(cfg: CompareConfig) -> dict[str, Path]:
    """Print the task x model table of ``cfg.results`` beside the paper's columns and write the PNG (and the table
    if asked); return the paths written."""
    from lamini_lm.evaluation.plots import plot_comparison
    from lamini_lm.evaluation.results import _label, format_table, load_results, results_frame
    from lamini_lm.io import write_text_atomic
    from lamini_lm.paper import PAPER_AVERAGES, reference_models

    results = [load_results(p) for p in cfg.results]
    labels = cfg.labels or [_label(r) for r in results]
    refs = reference_models(labels + [str(r["model"]) for r in results], cfg.reference, PAPER_AVERAGES)
    markdown = format_table(results, labels, refs)
    print(markdown)
    written = {}
    if cfg.table:
        table = Path(cfg.table)
        if table.suffix == ".csv":
            write_text_atomic(table, results_frame(results, labels, refs).to_csv(index_label="task"))
        else:
            write_text_atomic(table, markdown + "\n")
        written["table"] = table
    written["plot"] = Path(plot_comparison(results, cfg.output, labels, cfg.reference))
    return written


def main(argv: list[str] | None = None, prog: str = "lamini-lm compare") -> int:
    """Print a task x model table of results files beside the paper's numbers, and plot them."""
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
