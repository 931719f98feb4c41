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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lamini_lm.artifacts import StepReport
from lamini_lm.errors import DataError, LaminiError
from lamini_lm.generation.config import TeacherConfig, as_endpoints
from lamini_lm.generation.rows import failure_reason, not_sent, rows_to_table
from lamini_lm.generation.runner import (
    TeacherSession,
    check_before_sending,
    keyed_chat_completions,
    request_keys,
    run_sync,
)
from lamini_lm.generation.store import Store
from lamini_lm.io import load_table
from lamini_lm.prompts import SYSTEM_MESSAGE, prompt_hash
from lamini_lm.records import GENERATION_COLUMNS, InstructionSource, join_input

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

__all__ = [
    "generate_responses",
    "instruction_rows",
    "response_features",
    "response_messages",
    "stream_responses",
]

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
    ``budget reached``, ...), with up to 3 full error messages per reason in ``examples``; its ``details`` count
    the run's distinct ``requests``, those sent (``to_send``) and those answered by the store (``from_cache``).
    With ``top_logprobs`` set, the rows carry the teacher's sparse columns too (:func:`response_features`).

    The input, credentials and the budget are checked before the first request. The rows take the path of the
    ``generate responses`` stage (:func:`stream_responses`, as one chunk), so both give the same rows, teacher
    columns and report.
    """
    start = time.monotonic()
    rows, joined = instruction_rows(instructions, instruction_source)
    tables: list[pa.Table] = []
    tally = _answer_chunks(
        [(rows, joined)], as_endpoints(config), store, tables.append, _source(instruction_source), system_message,
        dry_run=dry_run,
    )  # fmt: skip
    out = _tables_to_dataset(tables, teacher_columns=bool(tally.top_logprobs))
    if not return_report:
        return out
    return out, tally.report(not dry_run, time.monotonic() - start)


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


def _with_teacher_table(table: pa.Table, logprobs: list[dict[str, list] | None]) -> pa.Table:
    """``table`` (one chunk's rows) with the teacher's sparse columns
    (:func:`~lamini_lm.records.teacher_logits_features`, with the sampled ids) from each row's ``token_logprobs``; a
    row without them (a failure) gets empty lists."""
    import pyarrow as pa

    from lamini_lm.records import teacher_logits_features

    schema = teacher_logits_features(response_ids=True).arrow_schema
    sparse = pa.Table.from_pydict(_teacher_columns(logprobs), schema=schema)
    for name in sparse.column_names:
        table = table.append_column(schema.field(name), sparse[name])
    return table


def response_features(teacher_columns: bool = False) -> datasets.Features:
    """The columns of a responses table: :func:`~lamini_lm.records.generation_features`, plus the teacher's sparse
    columns (:func:`~lamini_lm.records.teacher_logits_features`, with the sampled ids) under ``--top_logprobs``."""
    import datasets

    from lamini_lm.records import generation_features, teacher_logits_features

    features = generation_features()
    if teacher_columns:
        features = datasets.Features({**features, **teacher_logits_features(response_ids=True)})
    return features


def _tables_to_dataset(tables: list[pa.Table], teacher_columns: bool) -> datasets.Dataset:
    """The chunks' tables of one in-memory run as one Dataset, with the declared features."""
    import datasets
    import pyarrow as pa
    from datasets.table import InMemoryTable

    features = response_features(teacher_columns)
    table = pa.concat_tables(tables) if tables else features.arrow_schema.empty_table()
    return datasets.Dataset(InMemoryTable(table), info=datasets.DatasetInfo(features=features))


@dataclass
class _Tally:
    """The counts of a run's report, added chunk by chunk (a streaming run never holds all its rows)."""

    rows: int = 0
    asked: int = 0
    requests: int = 0  # distinct requests of the whole run (TeacherSession's count)
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
    schema, with the teacher columns under ``top_logprobs``) to ``write`` as an Arrow table: memory holds a few
    chunks, whatever the input's size. :func:`generate_responses` is this path with its rows as one chunk.

    The next chunk is read and its requests queued while the previous chunk's are in flight (one
    :class:`~lamini_lm.generation.runner.TeacherSession` for the whole run: no barrier between chunks; with the
    Batch API, chunk after chunk). Input, credentials, the endpoint and a budget too small for one request are
    checked (:func:`~lamini_lm.generation.runner.check_before_sending`) on the first chunk that has something to
    send, before anything is paid. The counts are the whole run's: ``requests`` distinct requests, ``to_send`` the
    requests sent, ``from_cache`` those answered by the store (a request repeated in two chunks counts once).
    """
    chunks = (instruction_rows(chunk) for chunk in _chunks(inputs, chunk_rows))
    return _answer_chunks(chunks, as_endpoints(config), store, write, _source(instruction_source), system_message)


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


def _answer_chunks(
    chunks: Iterable[tuple[list[dict[str, Any]], set[int]]],
    endpoints: list[TeacherConfig],
    store: str | os.PathLike,
    write: Callable[[pa.Table], None],
    source: str | None,
    system_message: str,
    dry_run: bool = False,
) -> _Tally:
    """The one path of response generation: each ``(rows, joined)`` chunk asked, answered, filled, counted and
    handed to ``write``. Real-time runs go through a :class:`TeacherSession`; the Batch API and a dry run (which
    sends nothing and prints what it would send) take the chunks one call at a time."""
    version = prompt_hash(system_message)
    tally = _Tally(top_logprobs=endpoints[0].top_logprobs)
    checked = dry_run

    def prepare(chunk: tuple[list[dict[str, Any]], set[int]]) -> tuple:
        nonlocal checked
        rows, joined = chunk
        asked, messages = _to_ask(rows, source, system_message)
        if messages and not checked:  # until a chunk has something to send: nothing needs a key or a budget
            checked = check_before_sending(messages, endpoints, store, prompt_version=version).requests > 0
        return rows, asked, joined, messages

    def emit(rows, asked, joined, keys, responses) -> None:
        logprobs = _fill(rows, asked, responses, keys, version, endpoints[0].model)
        tally.add(rows, asked, joined)
        table = rows_to_table(rows)
        write(_with_teacher_table(table, logprobs) if tally.top_logprobs else table)

    prepared = map(prepare, chunks)
    if dry_run or endpoints[0].batch_api:
        _one_call_a_chunk(prepared, endpoints, store, version, dry_run, tally, emit)
    else:
        first = next(prepared, None)  # checked before the session makes its clients and shows its progress bar
        if first is not None:
            run_sync(_stream(itertools.chain([first], prepared), endpoints, store, version, tally, emit))
    return tally


def _one_call_a_chunk(prepared, endpoints, store, version: str, dry_run: bool, tally: _Tally, emit) -> None:
    """The Batch API (or a dry run): each chunk in one :func:`keyed_chat_completions` call, counted as a
    :class:`TeacherSession` counts (a chunk's answers are stored before the next chunk is asked)."""
    with Store(store) as st:
        for rows, asked, joined, messages in prepared:
            if dry_run and tally.rows == 0:
                _print_samples(messages, [i in joined for i in asked])
            keys = request_keys(messages, endpoints, prompt_version=version)
            cached, new = st.get_many(keys), st.first_asked(keys)
            tally.requests += len(new)
            tally.from_cache += len(new.intersection(cached))
            tally.to_send += len(set(keys).difference(cached))
            _, responses = keyed_chat_completions(
                messages, endpoints, store, desc="responses", dry_run=dry_run, prompt_version=version
            )
            emit(rows, asked, joined, keys, responses)


async def _stream(prepared, endpoints, store, version: str, tally: _Tally, emit) -> None:
    import asyncio

    window: deque = deque()  # chunks whose requests are queued: (rows, asked, joined, futures)

    def flush() -> None:
        rows, asked, joined, futures = window.popleft()
        answers = [f.result() for f in futures]
        emit(rows, asked, joined, [a.key for a in answers], [a.response for a in answers])

    with Store(store) as st:
        async with TeacherSession({"teacher": endpoints}, st, desc="responses") as session:
            for rows, asked, joined, messages in prepared:
                session.expect(len(messages))
                window.append((rows, asked, joined, [session.ask(m, "teacher", version) for m in messages]))
                while len(window) > 2:  # the chunk before the last: its answers, while the last is in flight
                    await asyncio.gather(*window[0][3])
                    flush()
            while window:
                await asyncio.gather(*window[0][3])
                flush()
        tally.requests, tally.to_send, tally.from_cache = session.requests, session.sent, session.from_store


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
