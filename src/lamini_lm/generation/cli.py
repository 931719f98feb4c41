"""``lamini-lm generate instructions|responses``: the generation stage on the command line.

Usage:
    lamini-lm generate instructions --strategy example --seeds seeds.jsonl --num_prompts 100 \\
        --model gpt-3.5-turbo --output out/instructions
    lamini-lm generate instructions --strategy topic --seeds seeds.jsonl --topics categories.csv --output out/topic
    lamini-lm generate responses --input out/instructions --base-url http://127.0.0.1:8000/v1 --model my-model \\
        --concurrency 64 --budget 20 --output out/responses
    lamini-lm generate responses generate.yaml --dry-run     # settings from YAML, flags win

Answers are committed to ``--store`` (default ``<output>.store.sqlite``) as they arrive: after Ctrl-C, a kill or
a crash, run the same command again and only what is missing is sent.
"""

from __future__ import annotations

import logging
import signal
import sys
from dataclasses import dataclass, field

from lamini_lm.generation.config import TeacherConfig

__all__ = ["InstructionArgs", "OutputArgs", "ResponseArgs", "main"]

logger = logging.getLogger(__name__)


@dataclass
class InstructionArgs:
    """What to generate instructions from."""

    seeds: str = field(
        default=None,
        metadata={"required": True, "help": "seed instructions: JSONL/JSON/CSV/parquet file or dataset folder"},
    )
    strategy: str = field(
        default="example", metadata={"choices": ["example", "topic"], "help": "example- or topic-guided (SPEC 3)"}
    )
    topics: str | None = field(
        default=None, metadata={"help": "table of category, n_subcategories, n_pages (topic strategy)"}
    )
    num_prompts: int = field(default=10, metadata={"help": "requests to send (each asks for 20 or 10)"})
    n_per_prompt: int | None = field(
        default=None, metadata={"help": "instructions asked per request (default 20 Self-Instruct, 10 P3/FLAN)"}
    )
    n_examples: int = field(default=3, metadata={"help": "seed examples shown per request"})
    n_topics: int = field(default=3, metadata={"help": "topics per request (topic strategy)"})
    seed: int = field(default=0, metadata={"help": "RNG seed: the same seed gives the same prompts"})
    no_topic_filter: bool = field(
        default=False, metadata={"help": "use every category of --topics, without the SPEC 2 filter"}
    )


@dataclass
class ResponseArgs:
    """What to answer."""

    input: str = field(
        default=None,
        metadata={"required": True, "help": "instructions: JSONL/JSON/CSV/parquet file or dataset folder"},
    )
    instruction_source: str | None = field(
        default=None, metadata={"help": "instruction_source for rows without one (e.g. alpaca)"}
    )


@dataclass
class OutputArgs:
    """Where results go."""

    output: str = field(default=None, metadata={"required": True, "help": "dataset folder to write"})
    store: str | None = field(default=None, metadata={"help": "answer store (default <output>.store.sqlite)"})
    dry_run: bool = field(default=False, metadata={"help": "print requests, tokens and cost; send nothing"})
    overwrite: bool = field(default=False, metadata={"help": "replace --output if it exists"})


def _terminate(signum, frame):  # SIGTERM ends the run like Ctrl-C: answers so far are already committed
    raise KeyboardInterrupt


def main(argv: list[str] | None = None, prog: str = "lamini-lm generate") -> int:
    """Generate instructions or responses with a teacher."""
    from lamini_lm.config import parse_config

    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"instructions": InstructionArgs, "responses": ResponseArgs}
    if not argv or argv[0] not in commands:
        print(f"usage: {prog} {{instructions,responses}} [CONFIG.yaml] [--flags]; --help after either for settings")
        print(__doc__)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    what = argv[0]
    task, out, teacher = parse_config(
        [commands[what], OutputArgs, TeacherConfig],
        argv[1:],
        prog=f"{prog} {what}",
        description=f"Generate {what} with an OpenAI-compatible teacher.",
    )
    store = out.store or out.output.rstrip("/\\") + ".store.sqlite"
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        if what == "instructions":
            from lamini_lm.generation.instructions import generate_instructions

            ds = generate_instructions(
                task.seeds,
                strategy=task.strategy,
                topics=task.topics,
                config=teacher,
                store=store,
                num_prompts=task.num_prompts,
                n_examples=task.n_examples,
                n_topics=task.n_topics,
                n_per_prompt=task.n_per_prompt,
                seed=task.seed,
                filter_topic_table=not task.no_topic_filter,
                dry_run=out.dry_run,
            )
        else:
            from lamini_lm.generation.responses import generate_responses

            ds = generate_responses(
                task.input,
                config=teacher,
                store=store,
                instruction_source=task.instruction_source,
                dry_run=out.dry_run,
            )
    except KeyboardInterrupt:
        print(f"interrupted: answers so far are committed in {store}; run the same command again to continue")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if out.dry_run:
        return 0
    from lamini_lm.io import save_dataset

    save_dataset(ds, out.output, overwrite=out.overwrite)
    failed = sum(e is not None for e in ds["error"])
    tokens = sum(ds["prompt_tokens"]) + sum(ds["completion_tokens"])
    print(
        f"wrote {len(ds):,} rows to {out.output} ({failed:,} failed, {tokens:,} tokens, "
        f"${sum(ds['cost_usd']):,.4f}); store: {store}"
    )
    if failed:
        print("failed rows carry their reason in the `error` column; re-running retries transient failures")
    return 0
