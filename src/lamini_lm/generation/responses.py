"""Response generation: every instruction answered by the teacher under the verbatim system message.

One output row per input row, in order, with the input's provenance columns kept. A row the teacher could not
answer (or whose instruction is missing or failed upstream) carries ``error`` and no response. A table with an
``input`` column (Alpaca's format: ``instruction``, ``input``, ``output``) is asked, and stored, with each row's input
joined to its instruction by :func:`lamini_lm.records.join_input` (a blank line between them).

Example:
    >>> from lamini_lm.generation import TeacherConfig, generate_responses
    >>> cfg = TeacherConfig(base_url="http://127.0.0.1:8000/v1", model="my-model", max_tokens=256)
    >>> ds = generate_responses(["Name three primary colours."], config=cfg, store="teacher.sqlite")  # doctest: +SKIP
    >>> ds[0]["response"]  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import os
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lamini_lm.artifacts import StepReport
from lamini_lm.errors import DataError, LaminiError
from lamini_lm.generation.config import TeacherConfig, as_endpoints
from lamini_lm.generation.rows import failure_reason, not_sent, rows_to_dataset, rows_to_table
from lamini_lm.generation.runner import (
    TeacherSession,
    check_before_sending,
    estimate,
    keyed_chat_completions,
    run_sync,
)
from lamini_lm.generation.store import Store
from lamini_lm.io import load_table
from lamini_lm.prompts import SYSTEM_MESSAGE, prompt_hash
from lamini_lm.records import GENERATION_COLUMNS, InstructionSource, join_input

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

__all__ = ["generate_responses", "instruction_rows", "response_messages", "stream_responses", "with_teacher_columns"]

DRY_RUN_SAMPLES = 3  # user messages a dry run prints, so what the teacher will be asked can be read before paying


def response_messages(instruction: str, system_message: str = SYSTEM_MESSAGE) -> list[dict[str, str]]:
    """The chat request answering ``instruction`` under the paper's system message."""
    return [{"role": "system", "content": system_message}, {"role": "user", "content": instruction}]


def _source(instruction_source: str | None) -> str | None:
    return InstructionSource.parse(instruction_source).value if instruction_source is not None else None


def instruction_rows(
    instructions: Any, instruction_source: str | None = None
) -> tuple[list[dict[str, Any]], set[int]]:
    """The rows to ask the teacher, in the generation schema, and the indices of those whose ``input`` was joined.

    ``instructions``: a Dataset, a path, a list of dicts or of strings, with an ``instruction`` column; an ``input``
    column (Alpaca's format) is joined to its instruction with :func:`lamini_lm.records.join_input`, so what is
    asked is also what is stored. Response and dialogue generation both read their inputs here.
    """
    if isinstance(instructions, (list, tuple)) and all(isinstance(s, str) for s in instructions):
        instructions = [{"instruction": s} for s in instructions]
    try:
        ds = load_table(instructions, required=["instruction"])
        _source(instruction_source)
    except ValueError as e:
        if isinstance(e, LaminiError):
            raise
        raise DataError(str(e)) from None
    rows = [{c: row.get(c) for c in GENERATION_COLUMNS} for row in ds]
    joined: set[int] = set()
    if "input" in ds.column_names:  # Alpaca's format: the input is part of what is asked, and of what is stored
        for i, (row, input_text) in enumerate(zip(rows, ds["input"])):
            if isinstance(row["instruction"], str) and isinstance(input_text, str) and input_text.strip():
                row["instruction"] = join_input(row["instruction"], input_text)
                joined.add(i)
    return rows, joined


def generate_responses(
    instructions: Any,
    *,
    config: TeacherConfig | Sequence[TeacherConfig],
    store: str | os.PathLike,
    instruction_source: str | None = None,
    system_message: str = SYSTEM_MESSAGE,
    dry_run: bool = False,
    return_report: bool = False,
) -> datasets.Dataset | tuple[datasets.Dataset, StepReport]:
    """Answer each instruction; a Dataset with the columns of :func:`~lamini_lm.records.generation_features`.

    ``instructions``: a Dataset, a path (JSONL/JSON/CSV/parquet/dataset folder), a list of dicts or of strings,
    with an ``instruction`` column, and optionally ``input`` (Alpaca's format): a row with a non-empty input is asked
    ``join_input(instruction, input)``, and that joined text is the row's ``instruction`` in the output.
    ``instruction_source`` fills rows that have none (e.g. ``"alpaca"``). A dry run prints the first
    user messages besides the estimate.
    ``return_report=True`` returns ``(dataset, StepReport)``: step ``"responses"``, rows in = input rows, rows out =
    rows answered, removed = rows without an answer by reason (``no instruction to answer``, ``HTTP 500``,
    ``budget reached``, ...), with up to 3 full error messages per reason in ``examples``.

    The input, credentials and the budget are checked before the first request.
    """
    start = time.monotonic()
    rows, joined = instruction_rows(instructions, instruction_source)
    version = prompt_hash(system_message)  # PROMPT_HASHES["system_message"] for the paper's message
    asked, messages = _to_ask(rows, _source(instruction_source), system_message)
    planned = None if dry_run else check_before_sending(messages, config, store, prompt_version=version)
    if dry_run:
        _print_samples(messages, [i in joined for i in asked])
    keys, responses = keyed_chat_completions(
        messages, config, store, desc="responses", dry_run=dry_run, prompt_version=version
    )
    primary = as_endpoints(config)[0]
    logprobs = _fill(rows, asked, responses, keys, version, primary.model)
    out = rows_to_dataset(rows)
    if primary.top_logprobs:
        out = with_teacher_columns(out, logprobs)
    if not return_report:
        return out
    tally = _Tally(top_logprobs=primary.top_logprobs)
    tally.add(rows, asked, joined)
    if planned is not None:
        tally.to_send, tally.from_cache = planned.requests, planned.cached
    tally.requests = len(set(keys))
    return out, tally.report(planned is not None, time.monotonic() - start)


def _to_ask(rows: list[dict[str, Any]], source: str | None, system_message: str) -> tuple[list[int], list]:
    """Prepare ``rows`` in place (their response columns emptied, ``error`` for rows without an instruction);
    the indices of the rows to ask and their requests."""
    asked, messages = [], []
    for i, row in enumerate(rows):
        row["instruction_source"] = row["instruction_source"] or source
        for c in ("response", "finish_reason", "prompt_tokens", "completion_tokens", "cost_usd", "request_key"):
            row[c] = None  # these describe the response call, not whatever produced the instruction
        text = row["instruction"]
        if row.get("error") or not isinstance(text, str) or not text.strip():
            row["error"] = row.get("error") or "no instruction to answer"
            continue
        asked.append(i)
        messages.append(response_messages(text, system_message))
    return asked, messages


def _fill(rows, asked: list[int], responses, keys, version: str, model: str) -> list[dict[str, list] | None]:
    """Write the answers into ``rows``; returns each row's served top-k log-probs (None where none came)."""
    logprobs: list[dict[str, list] | None] = [None] * len(rows)
    for i, response, key in zip(asked, responses, keys):
        logprobs[i] = response.token_logprobs or None
        rows[i].update(
            response=response.text,
            response_prompt_version=version,
            teacher_model=response.model or model,
            finish_reason=response.finish_reason,
            prompt_tokens=response.usage.prompt_tokens,
            completion_tokens=response.usage.completion_tokens,
            cost_usd=response.cost_usd,
            request_key=key,
            error=response.error,
        )
    return logprobs


def _teacher_columns(logprobs: list[dict[str, list] | None]) -> dict[str, list]:
    from lamini_lm.records import TEACHER_COLUMNS, TEACHER_RESPONSE_IDS

    columns: dict[str, list] = {TEACHER_COLUMNS[0]: [], TEACHER_COLUMNS[1]: [], TEACHER_RESPONSE_IDS: []}
    for lp in logprobs:
        columns[TEACHER_COLUMNS[0]].append(lp["top_ids"] if lp else [])
        columns[TEACHER_COLUMNS[1]].append(lp["top_logprobs"] if lp else [])
        columns[TEACHER_RESPONSE_IDS].append(lp["token_ids"] if lp else [])
    return columns


def with_teacher_columns(ds: datasets.Dataset, logprobs: list[dict[str, list] | None]) -> datasets.Dataset:
    """``ds`` with the teacher's sparse columns (:func:`~lamini_lm.records.teacher_logits_features`, with the sampled
    ids) from each row's ``token_logprobs``; a row without them (a failure) gets empty lists."""
    import datasets

    from lamini_lm.records import teacher_logits_features

    features = teacher_logits_features(response_ids=True)
    sparse = datasets.Dataset.from_dict(_teacher_columns(logprobs), features=features)
    return datasets.concatenate_datasets([ds, sparse], axis=1)


def _with_teacher_table(table: pa.Table, logprobs: list[dict[str, list] | None]) -> pa.Table:
    """The same columns as :func:`with_teacher_columns`, added to one streamed chunk's Arrow table."""
    import pyarrow as pa

    from lamini_lm.records import teacher_logits_features

    schema = teacher_logits_features(response_ids=True).arrow_schema
    sparse = pa.Table.from_pydict(_teacher_columns(logprobs), schema=schema)
    for name in sparse.column_names:
        table = table.append_column(schema.field(name), sparse[name])
    return table


@dataclass
class _Tally:
    """The counts of a run's report, added chunk by chunk (a streaming run never holds all its rows)."""

    rows: int = 0
    asked: int = 0
    requests: int = 0  # distinct requests (within each chunk, in a streaming run)
    with_input: int = 0
    failed: int = 0
    unsent: int = 0
    to_send: int = 0
    from_cache: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    models: set = field(default_factory=set)
    removed: dict = field(default_factory=lambda: defaultdict(int))
    examples: dict = field(default_factory=lambda: defaultdict(list))
    failures: dict = field(default_factory=lambda: defaultdict(int))
    top_logprobs: int = 0  # the served top-k asked for on this pass (0: none)

    def add(self, rows: list[dict[str, Any]], asked: list[int], joined) -> None:
        asked_set = set(asked)
        self.rows += len(rows)
        self.asked += len(asked)
        self.with_input += len(joined)
        for i, row in enumerate(rows):
            self.prompt_tokens += row["prompt_tokens"] or 0
            self.completion_tokens += row["completion_tokens"] or 0
            self.cost_usd += row["cost_usd"] or 0.0
            if row["teacher_model"]:
                self.models.add(row["teacher_model"])
            error = row["error"]
            if error is None:
                continue
            reason = "no instruction to answer" if i not in asked_set else failure_reason(error)
            self.removed[reason] += 1
            if len(self.examples[reason]) < 3:
                self.examples[reason].append(error)
            if i in asked_set:
                self.unsent += not_sent(error)
                self.failed += not not_sent(error)
                if not not_sent(error):
                    self.failures[reason] += 1

    def report(self, planned: bool, seconds: float) -> StepReport:
        return StepReport(
            step="responses",
            rows_in=self.rows,
            rows_out=self.rows - sum(self.removed.values()),
            removed=dict(self.removed),
            examples=dict(self.examples),
            seconds=round(seconds, 3),
            details={
                "asked": self.asked,
                "with_input": self.with_input,
                "requests": self.requests,
                "failed": self.failed,
                "failures": dict(self.failures),
                "not_sent": self.unsent,
                **({"to_send": self.to_send, "from_cache": self.from_cache} if planned else {}),
                **({"top_logprobs": self.top_logprobs} if self.top_logprobs else {}),
            },
        )


def stream_responses(
    inputs: Sequence[str],
    *,
    config: TeacherConfig | Sequence[TeacherConfig],
    store: str | os.PathLike,
    write: Callable[[pa.Table], None],
    instruction_source: str | None = None,
    system_message: str = SYSTEM_MESSAGE,
    chunk_rows: int = 10_000,
) -> _Tally:
    """Answer the rows of ``inputs`` chunk by chunk, handing each chunk's rows (in order, in the generation
    schema) to ``write`` as an Arrow table: memory holds a few chunks, whatever the input's size.

    The next chunk is read and its requests queued while the previous chunk's are in flight (one
    :class:`~lamini_lm.generation.runner.TeacherSession` for the whole run: no barrier between chunks). Each chunk
    is checked before it is sent (:func:`~lamini_lm.generation.runner.check_before_sending`: credentials, the
    endpoint, a budget too small for one request), the first one before anything is paid. ``to_send`` and
    ``from_cache`` add up the chunks' own counts (a request repeated in two chunks counts in each).
    """
    return run_sync(
        _stream(inputs, as_endpoints(config), store, write, _source(instruction_source), system_message, chunk_rows)
    )


def _chunks(inputs: Sequence[str], chunk_rows: int) -> Iterator[list[dict[str, Any]]]:
    from lamini_lm.io import iter_batches

    for path in inputs:
        seen = False
        for batch in iter_batches(path, batch_rows=chunk_rows):
            if "instruction" not in batch.schema.names:
                raise DataError(f"{path}: missing column(s) ['instruction']; found {batch.schema.names}")
            seen = True
            yield batch.to_pylist()
        if not seen:
            raise DataError(f"{path}: no rows")


async def _stream(inputs, endpoints, store, write, source, system_message, chunk_rows) -> _Tally:
    import asyncio

    version = prompt_hash(system_message)
    tally = _Tally(top_logprobs=endpoints[0].top_logprobs)
    window: deque = deque()  # chunks whose requests are queued: (rows, asked, joined, futures)
    checked = False

    def flush() -> None:
        rows, asked, joined, futures = window.popleft()
        answers = [f.result() for f in futures]
        keys = [a.key for a in answers]
        logprobs = _fill(rows, asked, [a.response for a in answers], keys, version, endpoints[0].model)
        tally.add(rows, asked, joined)
        tally.requests += len(set(keys))
        table = rows_to_table(rows)
        write(_with_teacher_table(table, logprobs) if tally.top_logprobs else table)

    def prepare(chunk: list[dict[str, Any]]) -> tuple:
        nonlocal checked
        rows, joined = instruction_rows(chunk)
        asked, messages = _to_ask(rows, source, system_message)
        if messages:
            plan = estimate if checked else check_before_sending
            planned = plan(messages, endpoints, store, prompt_version=version)
            checked = checked or planned.requests > 0
            tally.to_send += planned.requests
            tally.from_cache += planned.cached
        return rows, asked, joined, messages

    chunks = _chunks(inputs, chunk_rows)
    first = prepare(next(chunks))  # checked before the session makes its clients and shows its progress bar
    with Store(store) as st:
        async with TeacherSession({"teacher": endpoints}, st, desc="responses") as session:
            for rows, asked, joined, messages in itertools.chain([first], map(prepare, chunks)):
                session.expect(len(messages))
                window.append((rows, asked, joined, [session.ask(m, "teacher", version) for m in messages]))
                while len(window) > 2:  # the chunk before the last: its answers, while the last is in flight
                    await asyncio.gather(*window[0][3])
                    flush()
            while window:
                await asyncio.gather(*window[0][3])
                flush()
    return tally


def _print_samples(messages: list[list[dict[str, str]]], has_input: list[bool]) -> None:
    """The first user messages of a dry run, verbatim and indented (the system message is the same for all), and
    the first one with an input joined when none of those has one."""
    shown = list(range(min(DRY_RUN_SAMPLES, len(messages))))
    if any(has_input) and not any(has_input[i] for i in shown):
        shown.append(has_input.index(True))
    if not shown:
        return
    joined = f"; {sum(has_input):,} with an input joined by join_input" if any(has_input) else ""
    print(f"user messages ({len(shown)} of {len(messages):,} shown{joined}):")
    for i in shown:
        lines = messages[i][-1]["content"].split("\n")
        print("\n".join([f"  [{i + 1}] {lines[0]}", *(f"      {line}" if line else "" for line in lines[1:])]))
