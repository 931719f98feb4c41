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

import os
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lamini_lm.artifacts import StepReport
from lamini_lm.errors import DataError, LaminiError
from lamini_lm.generation.config import TeacherConfig
from lamini_lm.generation.rows import failure_reason, not_sent, rows_to_dataset
from lamini_lm.generation.runner import check_before_sending, keyed_chat_completions
from lamini_lm.io import load_table
from lamini_lm.prompts import SYSTEM_MESSAGE, prompt_hash
from lamini_lm.records import GENERATION_COLUMNS, InstructionSource, join_input

if TYPE_CHECKING:
    import datasets

__all__ = ["generate_responses", "instruction_rows", "response_messages"]

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
    instruction_source = _source(instruction_source)
    asked, messages = [], []
    for i, row in enumerate(rows):
        row["instruction_source"] = row["instruction_source"] or instruction_source
        for c in ("response", "finish_reason", "prompt_tokens", "completion_tokens", "cost_usd", "request_key"):
            row[c] = None  # these describe the response call, not whatever produced the instruction
        text = row["instruction"]
        if row.get("error") or not isinstance(text, str) or not text.strip():
            row["error"] = row.get("error") or "no instruction to answer"
            continue
        asked.append(i)
        messages.append(response_messages(text, system_message))
    planned = None if dry_run else check_before_sending(messages, config, store, prompt_version=version)
    if dry_run:
        _print_samples(messages, [i in joined for i in asked])
    keys, responses = keyed_chat_completions(
        messages, config, store, desc="responses", dry_run=dry_run, prompt_version=version
    )
    primary = config if isinstance(config, TeacherConfig) else config[0]
    model = primary.model
    logprobs: dict[int, dict[str, list]] = {}
    for i, response, key in zip(asked, responses, keys):
        if response.token_logprobs:
            logprobs[i] = response.token_logprobs
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
    out = rows_to_dataset(rows)
    if primary.top_logprobs:
        out = with_teacher_columns(out, [logprobs.get(i) for i in range(len(rows))])
    if not return_report:
        return out
    removed: dict[str, int] = defaultdict(int)
    examples: dict[str, list[str]] = defaultdict(list)
    asked_set = set(asked)
    failures: dict[str, int] = defaultdict(int)
    failed = unsent = 0
    for i, row in enumerate(rows):
        error = row["error"]
        if error is None:
            continue
        reason = "no instruction to answer" if i not in asked_set else failure_reason(error)
        removed[reason] += 1
        if len(examples[reason]) < 3:
            examples[reason].append(error)
        if i in asked_set:
            unsent += not_sent(error)
            failed += not not_sent(error)
            if not not_sent(error):
                failures[reason] += 1
    report = StepReport(
        step="responses",
        rows_in=len(rows),
        rows_out=len(rows) - sum(removed.values()),
        removed=dict(removed),
        examples=dict(examples),
        seconds=round(time.monotonic() - start, 3),
        details={
            "asked": len(asked),
            "with_input": len(joined),
            "requests": len(set(keys)),
            "failed": failed,
            "failures": dict(failures),
            "not_sent": unsent,
            **({"to_send": planned.requests, "from_cache": planned.cached} if planned is not None else {}),
            **({"top_logprobs": primary.top_logprobs} if primary.top_logprobs else {}),
        },
    )
    return out, report


def with_teacher_columns(ds: datasets.Dataset, logprobs: list[dict[str, list] | None]) -> datasets.Dataset:
    """``ds`` with the teacher's sparse columns (:func:`~lamini_lm.records.teacher_logits_features`, with the sampled
    ids) from each row's ``token_logprobs``; a row without them (a failure) gets empty lists."""
    import datasets

    from lamini_lm.records import TEACHER_COLUMNS, TEACHER_RESPONSE_IDS, teacher_logits_features

    columns: dict[str, list] = {TEACHER_COLUMNS[0]: [], TEACHER_COLUMNS[1]: [], TEACHER_RESPONSE_IDS: []}
    for lp in logprobs:
        columns[TEACHER_COLUMNS[0]].append(lp["top_ids"] if lp else [])
        columns[TEACHER_COLUMNS[1]].append(lp["top_logprobs"] if lp else [])
        columns[TEACHER_RESPONSE_IDS].append(lp["token_ids"] if lp else [])
    sparse = datasets.Dataset.from_dict(columns, features=teacher_logits_features(response_ids=True))
    return datasets.concatenate_datasets([ds, sparse], axis=1)


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
