"""``lamini-lm generate instructions|responses|dialogues`` and ``lamini-lm cache``: generation on the command line.

Usage:
    lamini-lm generate instructions --strategy example --seeds seeds.jsonl --num_prompts 100 \\
        --model gpt-3.5-turbo --output out/instructions
    lamini-lm generate instructions --strategy topic --seeds seeds.jsonl --topics categories.csv --output out/topic
    lamini-lm generate responses --input out/instructions --base_url http://127.0.0.1:8000/v1 --model my-model \\
        --concurrency 64 --budget 20 --output out/responses
    lamini-lm generate responses generate.yaml --dry_run     # settings from YAML, flags win
    lamini-lm generate dialogues --input out/instructions --turns 2-5 --user_model gpt-4o-mini --output out/dialogues
    lamini-lm cache                                          # requests, tokens and dollars by model
    lamini-lm cache --export answers.jsonl
    lamini-lm cache --prune --older_than_days 90

Answers are committed to the shared teacher cache (``~/.cache/lamini_lm/teacher.sqlite``; ``$LAMINI_LM_CACHE`` or
``--store`` move it) as they arrive: after Ctrl-C, a kill or a crash, run the same command again and only what is
missing is sent; the same instructions sent to another ``--output`` are not paid again.
"""

from __future__ import annotations

import argparse
import logging
import signal
from dataclasses import dataclass, field

from lamini_lm.config import StageParser, check_range
from lamini_lm.errors import UsageError
from lamini_lm.generation.config import TeacherConfig
from lamini_lm.generation.dialogues import DialogueArgs, run_generate_dialogues
from lamini_lm.generation.stage import (
    GenerationFailed,
    InstructionArgs,
    OutputArgs,
    ResponseArgs,
    run_generate_instructions,
    run_generate_responses,
)
from lamini_lm.generation.store import default_store_path

__all__ = ["CacheArgs", "DialogueArgs", "InstructionArgs", "OutputArgs", "ResponseArgs", "cache_main", "main"]

logger = logging.getLogger(__name__)

EXAMPLES = {
    "instructions": (
        "  lamini-lm generate instructions --seeds seeds.jsonl --num_prompts 100 --model gpt-3.5-turbo "
        "--output out/instructions\n"
        "  lamini-lm generate instructions --strategy topic --seeds seeds.jsonl --topics categories.csv "
        "--output out/topic --dry_run"
    ),
    "responses": (
        "  lamini-lm generate responses --input out/instructions --output out/responses --budget 20\n"
        "  lamini-lm generate responses --input alpaca.jsonl --instruction_source alpaca "
        "--base_url http://127.0.0.1:8000/v1 --model my-model --output out/alpaca"
    ),
    "dialogues": (
        "  lamini-lm generate dialogues --input out/instructions --turns 2-5 --output out/dialogues --budget 20\n"
        "  lamini-lm generate dialogues --input alpaca.jsonl --instruction_source alpaca --turns 3 "
        "--user_model gpt-4o-mini --output out/chat --dry_run"
    ),
}
COMMANDS = {"instructions": InstructionArgs, "responses": ResponseArgs, "dialogues": DialogueArgs}
RUNS = {
    "instructions": run_generate_instructions,
    "responses": run_generate_responses,
    "dialogues": run_generate_dialogues,
}


def _terminate(signum, frame):  # SIGTERM ends the run like Ctrl-C: answers so far are already committed
    raise KeyboardInterrupt


def _parser(what: str, prog: str) -> StageParser:
    return StageParser(
        [COMMANDS[what], OutputArgs, TeacherConfig],
        prog=f"{prog} {what}",
        description=f"Generate {what} with an OpenAI-compatible teacher; answers are cached and never paid twice.",
        examples=EXAMPLES[what],
    )


def main(argv: list[str] | None = None, prog: str = "lamini-lm generate") -> int:
    """Generate instructions or responses with a teacher; prints a few lines, returns the exit code."""
    chooser = argparse.ArgumentParser(
        prog=prog,
        description="Ask a teacher for instructions or responses (cached, resumable, costed).",
        epilog="examples:\n" + "\n".join(EXAMPLES.values()) + f"\n\n`{prog} <command> --help` lists the settings.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = chooser.add_subparsers(dest="command", metavar="{instructions,responses,dialogues}", required=True)
    sub.add_parser("instructions", help="new instructions from seed examples (and topics)", add_help=False)
    sub.add_parser("responses", help="the teacher's answer to each instruction", add_help=False)
    sub.add_parser("dialogues", help="multi-turn dialogues: a user simulator and the teacher", add_help=False)
    chosen, rest = chooser.parse_known_args(argv)
    what = chosen.command
    task, out, teacher = _parser(what, prog).parse(rest)
    run = RUNS[what]
    store = out.store_path()
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        ds, manifest = run(task, out, teacher)
    except KeyboardInterrupt:
        print(f"interrupted: answers so far are committed in {store}; run the same command again to continue")
        return 130
    except GenerationFailed as e:
        print(f"wrote {e.output} ({e.report.summary()}); answers received are cached in {store}")
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    if manifest is None:  # dry run
        return 0
    report = manifest.reports[0]
    details = report["details"]
    if what == "dialogues":
        print(
            f"wrote {manifest.rows:,} dialogues to {out.output} ({details['complete']:,} complete; ended by "
            f"{', '.join(f'{k} {v:,}' for k, v in sorted(details['end_reasons'].items()))}; turns "
            f"{', '.join(f'{k}: {v:,}' for k, v in details['turns'].items())}; {sum(manifest.tokens.values()):,} "
            f"tokens, ${manifest.cost_usd:,.4f}); {details['from_cache']:,} turns came from the cache {store}"
        )
    else:
        print(
            f"wrote {manifest.rows:,} rows to {out.output} ({details['failed']:,} of {details['asked']:,} requests "
            f"failed, {sum(manifest.tokens.values()):,} tokens, ${manifest.cost_usd:,.4f}); "
            f"{details.get('from_cache', 0):,} answers came from the cache {store}"
        )
    if details["not_sent"]:
        print(
            f"budget reached: {details['not_sent']:,} requests were not sent; run the same command with a larger "
            "--budget_usd to continue (answers already received are cached and not paid again)"
        )
    elif details["failed"]:
        print("failed rows carry their reason in the `error` column; re-running retries transient failures")
    return 0


# --- lamini-lm cache ---


@dataclass
class CacheArgs:
    """Which teacher cache to look at, and what to do with it."""

    store: str | None = field(
        default=None,
        metadata={"help": "teacher cache (default: $LAMINI_LM_CACHE/teacher.sqlite, else ~/.cache/lamini_lm/...)"},
    )
    export: str | None = field(default=None, metadata={"help": "write the stored answers to this JSONL file"})
    prune: bool = field(default=False, metadata={"help": "remove the answers chosen by --older_than_days/--model"})
    older_than_days: float | None = field(
        default=None, metadata={"help": "with --prune or --export: only answers older than this many days"}
    )
    model: str | None = field(
        default=None, metadata={"help": "with --prune or --export: only answers of this model (as the table names it)"}
    )

    def __post_init__(self) -> None:
        check_range("older_than_days", self.older_than_days, 0)
        if self.prune and self.export:
            raise UsageError("--prune and --export: one at a time (export first, then prune)")
        if self.prune and self.older_than_days is None and self.model is None:
            raise UsageError("--prune needs --older_than_days N and/or --model NAME (delete the file to clear it all)")

    def store_path(self) -> str:
        return self.store or default_store_path()


def cache_main(argv: list[str] | None = None, prog: str = "lamini-lm cache") -> int:
    """Show the teacher cache by model; ``--export`` its answers; ``--prune`` old or unwanted ones."""
    from lamini_lm.generation.cache import cache_summary, export_answers, format_summary, prune_cache

    (args,) = StageParser(
        [CacheArgs],
        prog=prog,
        description="The shared teacher cache: requests, tokens and dollars by model; export or prune answers.",
        examples=(
            "  lamini-lm cache\n  lamini-lm cache --export answers.jsonl --model gpt-3.5-turbo-0125\n"
            "  lamini-lm cache --prune --older_than_days 90"
        ),
    ).parse(argv)
    store = args.store_path()
    if args.export:
        n = export_answers(store, args.export, older_than_days=args.older_than_days, model=args.model)
        print(f"wrote {n:,} answers to {args.export}")
        return 0
    if args.prune:
        n = prune_cache(store, older_than_days=args.older_than_days, model=args.model)
        print(f"removed {n:,} answers from {store}")
        return 0
    rows = cache_summary(store)
    print(f"{store}:")
    print(format_summary(rows) if rows else "(empty)")
    return 0
