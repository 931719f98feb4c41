"""``lamini-lm <stage> ...``: one thin function per pipeline stage, no logic of its own.

Each stage's module owns its parser (``main(argv) -> int``, built on :class:`lamini_lm.config.StageParser`); this
file only lists the stages, imports the one that runs (so ``lamini-lm --help`` stays fast), sets up logging and
turns errors into one line and an exit code: 2 for a wrong flag, setting or path, 1 for unusable data or a failed
run, 130 for Ctrl-C. ``-v`` shows tracebacks and third-party logs (HTTP requests); ``-vv`` debug logs.

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
import traceback
import warnings
from collections.abc import Sequence

from lamini_lm import __version__

__all__ = ["STAGES", "configure_logging", "main", "run_stage_main"]

# stage name -> ("module:function" taking (argv, prog) and returning an exit code, one-line help), in pipeline order.
STAGES: dict[str, tuple[str, str]] = {
    "toy-models": (
        "lamini_lm.testing:main",
        "build a tiny tokenizer, GPT-2 and T5 from config (offline tests, demos)",
    ),
    "generate": ("lamini_lm.generation.cli:main", "ask a teacher for instructions or responses (cached, resumable)"),
    "cache": ("lamini_lm.generation.cli:cache_main", "the shared teacher cache: cost by model, export, prune"),
    "build": ("lamini_lm.builders.build:main", "prepare the instructions into the HF cache as lamini_lm/instructions"),
    "dedup": ("lamini_lm.quality.cli:dedup_main", "drop exact, then ROUGE-L > 0.7 near duplicates (MinHash LSH)"),
    "filter": ("lamini_lm.quality.cli:filter_main", "drop rows by Alpaca/Self-Instruct heuristics and bad responses"),
    "decontaminate": ("lamini_lm.quality.cli:decontaminate_main", "remove/tag rows sharing 13-grams with eval sets"),
    "stats": ("lamini_lm.quality.cli:stats_main", "statistics and PNG plots: lengths, sources, verbs, diversity map"),
    "push-dataset": ("lamini_lm.publishing.dataset:main", "build parquet + dataset card and push to the Hub"),
    "train": ("lamini_lm.train.cli:main", "train a student from a YAML recipe (seq2seq or causal, LoRA, resume)"),
    "teacher-logits": ("lamini_lm.train.teacher_logits:main", "store a teacher's top-k log-probs for distillation"),
    "evaluate": ("lamini_lm.evaluation.harness:main", "score a student on the paper's 15 zero-shot tasks (lm-eval)"),
    "compare": ("lamini_lm.evaluation.compare:main", "table and plot of results files beside the paper's averages"),
    "judge": ("lamini_lm.evaluation.judge:main", "rate a student's answers A/B/C/D with a judge model (rubric)"),
    "rate": ("lamini_lm.evaluation.rating:main", "people rate answers A-D in a local web page; agreement report"),
    "publish": ("lamini_lm.publishing.model:main", "push a trained student with its card and manifest to the Hub"),
    "quickstart": ("lamini_lm.quickstart:main", "run the whole pipeline at toy scale into one folder (offline too)"),
}

# Loggers that print one line per HTTP request or per task: quiet unless -v.
_NOISY_LOGGERS = (
    "httpx",
    "httpx2",
    "httpcore",
    "openai",
    "urllib3",
    "filelock",
    "lm-eval",
    "lm_eval",
    "datasets",
    "fsspec",
)


# Loggers whose warnings repeat once per task or per row: errors only unless -v.
_CHATTY_WARNERS = ("lm_eval.api.task", "lm_eval.evaluator", "lm_eval.models.huggingface")


def configure_logging(verbose: int = 0) -> None:
    """lamini-lm's own INFO lines always; third-party INFO (HTTP requests, lm-eval per task) only with ``-v``."""
    logging.basicConfig(
        level=logging.DEBUG if verbose >= 2 else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose >= 1 else logging.WARNING)
    for name in _CHATTY_WARNERS:  # warnings repeated per task (num_fewshot overrides, metric defaults)
        logging.getLogger(name).setLevel(logging.WARNING if verbose >= 1 else logging.ERROR)
    if not verbose:
        import os

        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        warnings.filterwarnings("once")  # a warning repeated per task or per row is shown once


def _verbosity(argv: Sequence[str]) -> int:
    """How many ``-v`` a command line holds, wherever they stand (read only; the stage's parser accepts them)."""
    n = 0
    for a in argv:
        if a == "--verbose":
            n += 1
        elif a.startswith("-") and not a.startswith("--") and set(a[1:]) == {"v"}:
            n += len(a) - 1
    return n


def run_stage_main(stage_main, argv: Sequence[str], prog: str, verbose: int = 0) -> int:
    """Call a stage's ``main``; a :class:`~lamini_lm.errors.LaminiError` or an ``OSError`` becomes one line."""
    from lamini_lm.errors import LaminiError

    try:
        return int(stage_main(list(argv), prog=prog) or 0)
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted (Ctrl-C); what was finished is kept", file=sys.stderr)
        return 130
    except (LaminiError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as e:
        if verbose:
            traceback.print_exc()
        print(f"{prog}: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 1)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="lamini-lm",
        description="Distil a chat teacher into a herd of small instruction-following students.",
        epilog="Run `lamini-lm <stage> --help` for a stage's settings. Stages read YAML files and --key value flags.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lamini-lm {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging, tracebacks (-vv: debug)")
    sub = parser.add_subparsers(dest="stage", metavar="<stage>", title="stages")
    for name, (_, help_text) in STAGES.items():
        sub.add_parser(name, help=help_text, add_help=False)  # the stage's own parser reads what follows its name
    args, stage_argv = parser.parse_known_args(argv)
    if args.stage is None:
        parser.print_help()
        return 0
    verbose = args.verbose + _verbosity(stage_argv)
    configure_logging(verbose)
    target, _ = STAGES[args.stage]
    module_name, _, func_name = target.partition(":")
    stage_main = getattr(importlib.import_module(module_name), func_name or "main")
    return run_stage_main(stage_main, stage_argv, prog=f"lamini-lm {args.stage}", verbose=verbose)


if __name__ == "__main__":
    sys.exit(main())
