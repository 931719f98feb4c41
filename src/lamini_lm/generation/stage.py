"""The generation stage: config dataclasses -> ``run_generate_instructions`` / ``run_generate_responses`` -> artifact.

Each run writes its output folder as an artifact (:mod:`lamini_lm.artifacts`): the dataset (``save_to_disk``) plus
``lamini_lm.json`` with the config (no secret), the inputs and their lineage, the teacher cache it used, the prompt
hashes, the teacher model(s), rows, tokens, cost, timings and the step's :class:`~lamini_lm.artifacts.StepReport`.

Everything that can fail is checked before the first request is paid: the output folder (a folder holding a user's
files is refused; this stage's own artifact is replaced), the settings (in the dataclasses' ``__post_init__``), the
inputs, the credentials and a budget too small for one request. A run in which every request failed, or more than
``max_failure_rate`` of them, still writes its artifact (the answers are cached anyway), then raises
:class:`GenerationFailed` (exit 1) with the count and the first reasons.

Example:
    >>> from lamini_lm.generation import TeacherConfig
    >>> from lamini_lm.generation.stage import OutputArgs, ResponseArgs, run_generate_responses
    >>> teacher = TeacherConfig(base_url="http://127.0.0.1:8000/v1", model="my-model")
    >>> ds, manifest = run_generate_responses(
    ...     ResponseArgs(input="instructions.jsonl"), OutputArgs(output="out/responses"), teacher
    ... )  # doctest: +SKIP
    >>> manifest.report("responses").summary()  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lamini_lm.artifacts import Manifest, StepReport, artifact_output, check_output, describe_input
from lamini_lm.config import ConfigError, check_choice, check_range, check_required
from lamini_lm.errors import DataError
from lamini_lm.generation.config import TeacherConfig, as_endpoints
from lamini_lm.generation.store import Store, default_store_path
from lamini_lm.prompts import PROMPT_HASHES, SYSTEM_MESSAGE, prompt_hash
from lamini_lm.records import InstructionSource

if TYPE_CHECKING:
    import datasets

__all__ = [
    "INSTRUCTIONS_STAGE",
    "RESPONSES_STAGE",
    "GenerationFailed",
    "InstructionArgs",
    "OutputArgs",
    "ResponseArgs",
    "run_generate_instructions",
    "run_generate_responses",
]

INSTRUCTIONS_STAGE = "generate_instructions"
RESPONSES_STAGE = "generate_responses"
DEFAULT_MAX_FAILURE_RATE = 0.1
# Report details repeated in the manifest's extra; "sampling": what instruction generation's seed sampling fell
# short of (generation.instructions.sampling_report).
_EXTRA = ("to_send", "from_cache", "not_sent", "sampling", "top_logprobs")


class GenerationFailed(DataError):
    """Too many requests of a run failed (exit 1); the artifact was written, its rows carry their ``error``."""

    def __init__(self, message: str, output: str, report: StepReport):
        super().__init__(message)
        self.output, self.report = output, report


@dataclass
class InstructionArgs:
    """What to generate instructions from."""

    seeds: str = field(
        default=None,
        metadata={"required": True, "help": "seed instructions: JSONL/JSON/CSV/parquet file or dataset folder"},
    )
    strategy: str = field(
        default="example",
        metadata={
            "choices": ["example", "topic"],
            "help": "example: show seed instructions and ask for more like them; topic: also name Wikipedia topics",
        },
    )
    topics: str | None = field(
        default=None, metadata={"help": "table of category, n_subcategories, n_pages (needed by --strategy topic)"}
    )
    num_prompts: int = field(default=10, metadata={"help": "requests to send (each asks for 20 or 10)"})
    n_per_prompt: int | None = field(
        default=None,
        metadata={"help": "instructions asked per request (default: 20 for Self-Instruct seeds, 10 for P3/FLAN)"},
    )
    n_examples: int = field(default=3, metadata={"help": "seed examples shown per request"})
    min_examples: int = field(
        default=2,
        metadata={
            "help": "skip seed pools (a P3/FLAN subset, or the Self-Instruct seeds) with fewer seeds than this; "
            "the paper found 2 examples needed for usable instructions, 3 more consistent (3: its rule exactly)"
        },
    )
    n_topics: int = field(default=3, metadata={"help": "topics per request (topic strategy)"})
    seed: int = field(default=0, metadata={"help": "RNG seed: the same seed gives the same prompts"})
    topic_filter: bool = field(
        default=True,
        metadata={
            "help": "keep only categories of --topics with fewer than 3 words, more than 10 subcategories and "
            "more than 50 pages (the paper's rule)"
        },
    )

    def __post_init__(self) -> None:
        check_required(self)
        check_choice("strategy", self.strategy, ("example", "topic"))
        for name in ("num_prompts", "n_examples", "min_examples", "n_topics", "n_per_prompt"):
            check_range(name, getattr(self, name), 1)
        if self.strategy == "topic" and not self.topics:
            raise ConfigError("--strategy topic needs --topics (a table of category, n_subcategories, n_pages)")


@dataclass
class ResponseArgs:
    """What to answer."""

    input: list[str] = field(
        default=None,
        metadata={
            "required": True,
            "help": "instructions: JSONL/JSON/CSV/parquet files or dataset folders (several are answered together)",
        },
    )
    instruction_source: str | None = field(
        default=None, metadata={"help": "instruction_source for rows without one (e.g. alpaca)"}
    )
    chunk_rows: int = field(
        default=10_000,
        metadata={
            "help": "rows read, queued and written at a time; memory holds about three chunks, whatever the "
            "input's size (the next chunk is queued while the last one is in flight)"
        },
    )

    def __post_init__(self) -> None:
        check_required(self)
        check_range("chunk_rows", self.chunk_rows, 1)
        if isinstance(self.input, (str, os.PathLike)):
            self.input = [str(self.input)]
        if self.instruction_source is not None:
            try:
                InstructionSource.parse(self.instruction_source)
            except ValueError as e:
                raise ConfigError(f"--instruction_source: {e}") from None


@dataclass
class OutputArgs:
    """Where results go, and when a run counts as failed."""

    output: str = field(default=None, metadata={"required": True, "help": "dataset folder to write"})
    store: str | None = field(
        default=None,
        metadata={
            "help": "teacher cache shared by every run (default: $LAMINI_LM_CACHE/teacher.sqlite, else "
            "~/.cache/lamini_lm/teacher.sqlite)"
        },
    )
    dry_run: bool = field(default=False, metadata={"help": "print requests, tokens and cost; send nothing"})
    overwrite: bool = field(
        default=False, metadata={"help": "replace --output even if it holds files that are not this stage's output"}
    )
    max_failure_rate: float = field(
        default=DEFAULT_MAX_FAILURE_RATE,
        metadata={
            "help": "exit 1 when more than this share of the requests sent failed (the output is still written)"
        },
    )

    def __post_init__(self) -> None:
        check_required(self)
        check_range("max_failure_rate", self.max_failure_rate, 0, 1)

    def store_path(self) -> str:
        """``store``, or the shared default cache (:func:`~lamini_lm.generation.store.default_store_path`)."""
        return self.store or default_store_path()


def _teacher_config(teacher: TeacherConfig | Sequence[TeacherConfig]) -> Any:
    if isinstance(teacher, TeacherConfig):
        return dataclasses.asdict(teacher)
    return [dataclasses.asdict(t) for t in teacher]


def _check_failures(report: StepReport, output: OutputArgs, teacher: TeacherConfig | Sequence[TeacherConfig]) -> None:
    d = report.details
    done = d["asked"] - d["not_sent"]
    failed = d["failed"]
    if not failed or (failed < done and failed / done <= output.max_failure_rate):
        return
    counts = sorted(d["failures"].items(), key=lambda kv: -kv[1])
    reasons = "; ".join(f"{report.examples.get(k, [k])[0][:160]} ({n:,})" for k, n in counts[:3])
    share = "every one" if failed == done else f"more than --max_failure_rate {output.max_failure_rate:g}"
    hint = ""
    if counts and all(k in ("APIConnectionError", "APITimeoutError") for k, _ in counts):
        urls = ", ".join(e.base_url for e in as_endpoints(teacher))
        hint = f" The teacher at {urls} cannot be reached: start it, or point --base_url at a running server."
    raise GenerationFailed(
        f"{failed:,} of {done:,} requests failed ({share}); first reasons: {reasons}.{hint} The rows are written "
        f"to {output.output} with their reason in the `error` column; fix the cause and run the same command again "
        "(answers already received are cached, not paid again)",
        output.output,
        report,
    )


def _save_quietly(ds: datasets.Dataset, folder) -> None:
    """``save_to_disk`` without its progress bar (the run's summary line says what was written)."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        ds.save_to_disk(str(folder))
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def _write(
    ds: datasets.Dataset,
    report: StepReport,
    *,
    stage: str,
    output: OutputArgs,
    config: dict[str, Any],
    inputs: list[dict[str, Any]],
    prompt_hashes: dict[str, str],
    model_column: str,
    start: float,
) -> Manifest:
    store = output.store_path()
    with Store(store) as st:
        answers = len(st)
    models = sorted({m for m in ds[model_column] if m})
    write_start = time.monotonic()
    with artifact_output(output.output, stage, output.overwrite) as tmp:
        _save_quietly(ds, tmp)
        manifest = Manifest(
            stage=stage,
            config=config,
            inputs=[*inputs, {**describe_input(store, role="teacher_store"), "answers": answers}],
            rows=len(ds),
            tokens={"prompt": sum(ds["prompt_tokens"]), "completion": sum(ds["completion_tokens"])},
            cost_usd=round(sum(ds["cost_usd"]), 6),
            teacher_models=models,
            prompt_hashes=prompt_hashes,
            reports=[report],
            timings={"generate_s": round(write_start - start, 3), "total_s": round(time.monotonic() - start, 3)},
            extra={k: report.details[k] for k in _EXTRA if k in report.details},
        )
        manifest.timings["total_s"] = round(time.monotonic() - start, 3)
        manifest.save(tmp)
    return manifest


def run_generate_instructions(
    task: InstructionArgs, output: OutputArgs, teacher: TeacherConfig | Sequence[TeacherConfig]
) -> tuple[datasets.Dataset, Manifest | None]:
    """Generate instructions into the artifact ``output.output``; returns ``(dataset, manifest)``.

    A dry run prints the estimate and writes nothing (manifest None). Raises :class:`GenerationFailed` after writing
    when too many requests failed.
    """
    from lamini_lm.generation.instructions import generate_instructions

    start = time.monotonic()
    as_endpoints(teacher)  # endpoints that disagree, or a broken --endpoints file, fail before anything else
    check_output(output.output, INSTRUCTIONS_STAGE, output.overwrite)  # a dry run too: it is the time to know
    ds, report = generate_instructions(
        task.seeds,
        strategy=task.strategy,
        topics=task.topics,
        config=teacher,
        store=output.store_path(),
        num_prompts=task.num_prompts,
        n_examples=task.n_examples,
        n_topics=task.n_topics,
        n_per_prompt=task.n_per_prompt,
        seed=task.seed,
        min_examples=task.min_examples,
        filter_topic_table=task.topic_filter,
        dry_run=output.dry_run,
        return_report=True,
    )
    if output.dry_run:
        return ds, None
    prompt = "topic_guided" if task.strategy == "topic" else "example_guided"
    inputs = [describe_input(task.seeds, role="input")]
    if task.topics:
        inputs.append(describe_input(task.topics, role="topics"))
    manifest = _write(
        ds,
        report,
        stage=INSTRUCTIONS_STAGE,
        output=output,
        config={"instructions": task, "output": output, "teacher": _teacher_config(teacher)},
        inputs=inputs,
        prompt_hashes={prompt: PROMPT_HASHES[prompt]},
        model_column="instruction_model",
        start=start,
    )
    _check_failures(report, output, teacher)
    return ds, manifest


def _instruction_tables(paths: Sequence[str]) -> datasets.Dataset:
    """The rows of every input, in order, over the union of their columns (each needs ``instruction``)."""
    import datasets

    from lamini_lm.io import load_table

    tables = [load_table(p, required=["instruction"]) for p in paths]
    if len(tables) == 1:
        return tables[0]
    columns = list(dict.fromkeys(c for t in tables for c in t.column_names))
    rows = {c: [v for t in tables for v in (t[c][:] if c in t.column_names else [None] * len(t))] for c in columns}
    return datasets.Dataset.from_dict(rows)


def run_generate_responses(
    task: ResponseArgs,
    output: OutputArgs,
    teacher: TeacherConfig | Sequence[TeacherConfig],
    system_message: str = SYSTEM_MESSAGE,
) -> tuple[datasets.Dataset, Manifest | None]:
    """Answer the instructions of ``task.input`` into the artifact ``output.output``; returns ``(dataset, manifest)``.

    The input is streamed in chunks of ``task.chunk_rows`` (:func:`~lamini_lm.generation.responses.stream_responses`)
    and the rows are written as they are answered (parquet shards, turned into the ``save_to_disk`` folder at the
    end), so memory stays flat at millions of rows; the dataset returned is memory-mapped from the output.
    A dry run prints the estimate and writes nothing (manifest None). Raises :class:`GenerationFailed` after writing
    when too many requests failed.
    """
    import shutil

    from lamini_lm.generation.responses import generate_responses, stream_responses
    from lamini_lm.io import ShardWriter, load_table, release_shards

    start = time.monotonic()
    as_endpoints(teacher)
    check_output(output.output, RESPONSES_STAGE, output.overwrite)
    if output.dry_run:
        ds, _ = generate_responses(
            _instruction_tables(task.input),
            config=teacher,
            store=output.store_path(),
            instruction_source=task.instruction_source,
            system_message=system_message,
            dry_run=True,
            return_report=True,
        )
        return ds, None
    version = prompt_hash(system_message)
    name = "system_message" if version == PROMPT_HASHES["system_message"] else "custom_system_message"
    store = output.store_path()
    with artifact_output(output.output, RESPONSES_STAGE, output.overwrite) as tmp:
        scratch = tmp / ".rows"
        with ShardWriter(scratch, rows_per_shard=max(task.chunk_rows, 100_000)) as writer:
            tally = stream_responses(
                task.input,
                config=teacher,
                store=store,
                write=writer.write,
                instruction_source=task.instruction_source,
                system_message=system_message,
                chunk_rows=task.chunk_rows,
            )
        report = tally.report(True, time.monotonic() - start)
        write_start = time.monotonic()
        _parquet_to_saved(release_shards(scratch), tmp, teacher_columns=bool(as_endpoints(teacher)[0].top_logprobs))
        shutil.rmtree(scratch)
        with Store(store) as st:
            answers = len(st)
        manifest = Manifest(
            stage=RESPONSES_STAGE,
            config={"responses": task, "output": output, "teacher": _teacher_config(teacher)},
            inputs=[
                *(describe_input(path, role="input") for path in task.input),
                {**describe_input(store, role="teacher_store"), "answers": answers},
            ],
            rows=tally.rows,
            tokens={"prompt": tally.prompt_tokens, "completion": tally.completion_tokens},
            cost_usd=round(tally.cost_usd, 6),
            teacher_models=sorted(tally.models),
            prompt_hashes={name: version},
            reports=[report],
            timings={"generate_s": round(write_start - start, 3)},
            extra={k: report.details[k] for k in _EXTRA if k in report.details},
        )
        manifest.timings["total_s"] = round(time.monotonic() - start, 3)
        manifest.save(tmp)
    _check_failures(report, output, teacher)
    return load_table(output.output), manifest


def _parquet_to_saved(shards: list, folder, teacher_columns: bool = False) -> None:
    """The parquet shards of a streaming run as a ``save_to_disk`` folder (what every reader of this stage's output
    loads), converted batch by batch through a cache inside ``folder`` that is removed after; ``teacher_columns``:
    the rows carry the served top-k log-probs too (``--top_logprobs``)."""
    import shutil

    import datasets

    from lamini_lm.generation.responses import response_features
    from lamini_lm.generation.rows import rows_to_dataset

    features = response_features(teacher_columns)
    cache = folder / ".cache"
    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        if shards:
            ds = datasets.Dataset.from_parquet([str(p) for p in shards], features=features, cache_dir=str(cache))
        else:
            ds = rows_to_dataset([])
        ds.save_to_disk(str(folder))
        del ds
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()
        shutil.rmtree(cache, ignore_errors=True)
