"""``lamini-lm <stage> ...``: one thin function per pipeline stage, no logic of its own.

Each stage's module owns its parser (``main(argv) -> int``); this file only lists the stages and imports the one
that runs, so ``lamini-lm --help`` stays fast.

Usage:
    lamini-lm --help
    lamini-lm generate instructions --strategy example --seeds seeds.jsonl --output out/instructions
    lamini-lm train recipes/lamini-flan-t5-248m.yaml --output_dir runs/flan-t5-248m
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from lamini_lm import __version__

__all__ = ["STAGES", "main"]

# stage name -> ("module:function" taking (argv, prog) and returning an exit code, one-line help), in pipeline order.
STAGES: dict[str, tuple[str, str]] = {
    "toy-models": ("lamini_lm.toy:main", "build a tiny tokenizer, GPT-2 and T5 from config (offline tests, demos)"),
    "generate": ("lamini_lm.generation.cli:main", "ask a teacher for instructions or responses (cached, resumable)"),
    "build": ("lamini_lm.builders.build:main", "prepare the instructions into the HF cache as lamini_lm/instructions"),
    "dedup": ("lamini_lm.quality.cli:dedup_main", "drop exact, then ROUGE-L > 0.7 near duplicates (MinHash LSH)"),
    "filter": ("lamini_lm.quality.cli:filter_main", "drop rows by Alpaca/Self-Instruct heuristics and bad responses"),
    "decontaminate": ("lamini_lm.quality.cli:decontaminate_main", "remove/tag rows sharing 13-grams with eval sets"),
    "stats": ("lamini_lm.quality.cli:stats_main", "statistics and PNG plots: lengths, sources, verbs, diversity map"),
    "push-dataset": ("lamini_lm.quality.cli:push_dataset_main", "build parquet + dataset card and push to the Hub"),
    "train": ("lamini_lm.train.cli:main", "train a student from a YAML recipe (seq2seq or causal, LoRA, resume)"),
    "evaluate": ("lamini_lm.evaluation.harness:main", "score a student on the paper's 15 zero-shot tasks (lm-eval)"),
    "compare": ("lamini_lm.evaluation.compare:main", "table and plot of results files beside the paper's averages"),
    "judge": ("lamini_lm.evaluation.judge:main", "rate a student's answers A/B/C/D with a judge model (rubric)"),
    "publish": ("lamini_lm.hub:main", "push a trained student with its model card to the Hub in one commit"),
    "quickstart": ("lamini_lm.quickstart:main", "run the whole pipeline at toy scale into one folder (offline too)"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="lamini-lm",
        description="Distil a chat teacher into a herd of small instruction-following students.",
        epilog="Run `lamini-lm <stage> --help` for a stage's settings. Stages read YAML files and --key value flags.",
    )
    parser.add_argument("--version", action="version", version=f"lamini-lm {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="stage", metavar="<stage>", title="stages")
    for name, (_, help_text) in STAGES.items():
        sub.add_parser(name, help=help_text, add_help=False)
    # Split at the stage name: what follows belongs to the stage's own parser.
    stage_at = next((i for i, a in enumerate(argv) if a in STAGES), None)
    head, rest = (argv, []) if stage_at is None else (argv[: stage_at + 1], argv[stage_at + 1 :])
    args = parser.parse_args(head)
    if args.stage is None:
        parser.print_help()
        return 0
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose + 1, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    target, _ = STAGES[args.stage]
    module_name, _, func_name = target.partition(":")
    stage_main = getattr(importlib.import_module(module_name), func_name or "main")
    return int(stage_main(rest, prog=f"lamini-lm {args.stage}") or 0)


if __name__ == "__main__":
    sys.exit(main())
