"""Multi-turn dialogues: a user simulator and the teacher take turns, starting from each instruction.

The paper's students are "not designed to handle multi-turn dialog"; this stage distils dialogues the same way the
paper distils single answers. Each dialogue starts with an instruction of any LaMini source as its first user turn.
The teacher answers under the paper's system message (SPEC 4); then a *user simulator* (its own model, endpoint and
system prompt, :data:`lamini_lm.prompts.USER_SIMULATOR_PROMPT`; by default the teacher's endpoint and model) writes
the next user message, seeing the dialogue with the roles swapped; and so on, until the dialogue has its planned
number of assistant turns (``--turns 3`` or ``--turns 2-5``, drawn per dialogue from ``--seed``), or the simulator
answers with the stop marker :data:`lamini_lm.prompts.USER_STOP_MARKER` (that message is dropped).

Exactly once, and resumable. Every turn is one keyed request in the shared teacher cache; its key covers the whole
history so far (model, every message, sampling, prompt version). Each dialogue plays as its own sequence on one
:class:`~lamini_lm.generation.runner.TeacherSession`: when a turn is answered its next request is queued at once,
so turns of different dialogues interleave and no dialogue waits for a round (the Batch API and a dry run still go
round by round: one batch per turn step). After a SIGKILL, the same command replays the stored turns from the
cache and sends only what was missing: what was in flight when the process died. The first assistant turn is
exactly a ``generate responses`` request, so a cache that already answered these instructions pays it zero times.

A turn that fails for good ends its dialogue: the row keeps the turns before it, ``complete`` is False,
``end_reason`` is ``"error"`` and ``error`` says why. A turn not sent (budget, interruption) gives ``"not_sent"``;
re-running continues those dialogues. ``messages`` always ends on an assistant turn.

Example:
    >>> from lamini_lm.generation import TeacherConfig
    >>> from lamini_lm.generation.dialogues import DialogueArgs, run_generate_dialogues
    >>> from lamini_lm.generation.stage import OutputArgs
    >>> teacher = TeacherConfig(base_url="http://127.0.0.1:8000/v1", model="my-model")
    >>> ds, manifest = run_generate_dialogues(
    ...     DialogueArgs(input="instructions.jsonl", turns="2-4"), OutputArgs(output="out/dialogues"), teacher
    ... )  # doctest: +SKIP
    >>> ds[0]["messages"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lamini_lm.artifacts import Manifest, StepReport, artifact_output, check_output, describe_input
from lamini_lm.config import ConfigError, check_range, check_required
from lamini_lm.generation.config import TeacherConfig, as_endpoints
from lamini_lm.generation.cost import cost_usd, estimate_tokens, price_table
from lamini_lm.generation.responses import instruction_rows
from lamini_lm.generation.rows import failure_reason, not_sent
from lamini_lm.generation.runner import (
    TeacherSession,
    check_before_sending,
    keyed_chat_completions,
    request_keys,
    run_sync,
)
from lamini_lm.generation.stage import OutputArgs, _check_failures, _save_quietly, _teacher_config
from lamini_lm.generation.store import Store
from lamini_lm.prompts import (
    PROMPT_HASHES,
    SYSTEM_MESSAGE,
    USER_SIMULATOR_OPENING,
    USER_SIMULATOR_PROMPT,
    USER_SIMULATOR_VERSION,
    USER_STOP_MARKER,
    prompt_hash,
)
from lamini_lm.records import DIALOGUE_COLUMNS, InstructionSource, Response, dialogue_features

if TYPE_CHECKING:
    import datasets

__all__ = [
    "DIALOGUES_STAGE",
    "DialogueArgs",
    "dialogue_rows_to_dataset",
    "generate_dialogues",
    "parse_turns",
    "run_generate_dialogues",
    "simulator_messages",
    "teacher_messages",
    "user_config",
]

DIALOGUES_STAGE = "generate_dialogues"
MAX_TURNS = 50
USER_PROMPT_VERSION = USER_SIMULATOR_VERSION

Messages = list[dict[str, str]]


def parse_turns(value: str | int) -> tuple[int, int]:
    """``"3"`` -> (3, 3), ``"2-5"`` -> (2, 5): assistant turns per dialogue, at least 1, at most 50."""
    text = str(value).strip()
    low, sep, high = text.partition("-")
    try:
        a, b = int(low), int(high if sep else low)
    except ValueError:
        raise ConfigError(f"--turns {value!r}: expected N or A-B (assistant turns per dialogue), e.g. 2-5") from None
    if not 1 <= a <= b <= MAX_TURNS:
        raise ConfigError(f"--turns {value!r}: expected 1 <= A <= B <= {MAX_TURNS}")
    return a, b


@dataclass
class DialogueArgs:
    """What to start dialogues from, how long they are, and who plays the user."""

    input: str = field(
        default=None,
        metadata={"required": True, "help": "instructions (first user turns): JSONL/JSON/CSV/parquet or a folder"},
    )
    turns: str = field(
        default="2-5",
        metadata={"help": "assistant turns per dialogue: N, or A-B (each dialogue draws its own, from --seed)"},
    )
    seed: int = field(default=0, metadata={"help": "RNG seed of the turns drawn per dialogue"})
    instruction_source: str | None = field(
        default=None, metadata={"help": "instruction_source for rows without one (e.g. alpaca)"}
    )
    user_model: str | None = field(
        default=None, metadata={"help": "model that plays the user (default: the teacher's --model)"}
    )
    user_base_url: str | None = field(
        default=None, metadata={"help": "endpoint of the user simulator (default: the teacher's --base_url)"}
    )
    user_api_key_env: str | None = field(
        default=None, metadata={"help": "environment variable of the simulator's key (default: --api_key_env)"}
    )
    user_max_tokens: int = field(default=256, metadata={"help": "maximum tokens of a simulated user message"})
    user_temperature: float | None = field(
        default=None, metadata={"help": "sampling temperature of the simulator (default: the teacher's)"}
    )

    def __post_init__(self) -> None:
        check_required(self)
        self.turns = str(self.turns)
        parse_turns(self.turns)
        check_range("user_max_tokens", self.user_max_tokens, 1)
        check_range("user_temperature", self.user_temperature, 0, 2)
        if self.user_model is not None and not self.user_model.strip():
            raise ConfigError("--user_model is empty")
        if self.instruction_source is not None:
            try:
                InstructionSource.parse(self.instruction_source)
            except ValueError as e:
                raise ConfigError(f"--instruction_source: {e}") from None


def user_config(args: DialogueArgs, teacher: TeacherConfig | Sequence[TeacherConfig]) -> list[TeacherConfig]:
    """The simulator's endpoints: the teacher's, with the ``user_*`` settings of ``args`` applied."""
    changes: dict[str, Any] = {"max_tokens": args.user_max_tokens}
    if args.user_model:
        changes["model"] = args.user_model
    if args.user_temperature is not None:
        changes["temperature"] = args.user_temperature
    if args.user_api_key_env:
        changes["api_key_env"] = args.user_api_key_env
    endpoints = as_endpoints(teacher)
    if args.user_base_url:
        return as_endpoints(dataclasses.replace(endpoints[0], base_url=args.user_base_url, **changes))
    return as_endpoints([dataclasses.replace(e, **changes) for e in endpoints])


def teacher_messages(dialogue: Messages, system_message: str = SYSTEM_MESSAGE) -> Messages:
    """The teacher's request for the next assistant turn: the paper's system message, then the dialogue."""
    return [{"role": "system", "content": system_message}, *dialogue]


def simulator_messages(dialogue: Messages, user_prompt: str = USER_SIMULATOR_PROMPT) -> Messages:
    """The simulator's request for the next user turn: its system prompt, the opening line, then the dialogue with
    the roles swapped (its own earlier messages as ``assistant``, the teacher's answers as ``user``)."""
    swap = {"user": "assistant", "assistant": "user"}
    flipped = [{"role": swap[m["role"]], "content": m["content"]} for m in dialogue]
    return [{"role": "system", "content": user_prompt}, {"role": "user", "content": USER_SIMULATOR_OPENING}, *flipped]


@dataclass
class _Dialogue:
    row: int
    planned: int  # assistant turns
    messages: Messages
    end_reason: str | None = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    last_key: str | None = None
    teacher_model: str | None = None
    user_model: str | None = None
    finish_reason: str | None = None

    @property
    def turns(self) -> int:
        return sum(m["role"] == "assistant" for m in self.messages)


def _draw_turns(instruction: str, index: int, low: int, high: int, seed: int) -> int:
    return random.Random(f"{seed}:{index}:{instruction}").randint(low, high) if low < high else low


def _budget_note(budget: float) -> str:
    return f"budget of ${budget:.4f} reached before this request was sent; re-run with a larger budget"


def generate_dialogues(
    instructions: Any,
    *,
    config: TeacherConfig | Sequence[TeacherConfig],
    user: TeacherConfig | Sequence[TeacherConfig] | None = None,
    store: str,
    turns: str | tuple[int, int] = "2-5",
    seed: int = 0,
    instruction_source: str | None = None,
    system_message: str = SYSTEM_MESSAGE,
    dry_run: bool = False,
    return_report: bool = False,
) -> datasets.Dataset | tuple[datasets.Dataset, StepReport]:
    """Play one dialogue per instruction; a Dataset with the columns of :func:`~lamini_lm.records.dialogue_features`.

    ``config``: the teacher's endpoint(s); ``user``: the simulator's (default: the teacher's, ``max_tokens`` 256).
    A dry run sends nothing: it replays what the store holds, prints the requests, tokens and cost the rest would
    take (the history grows each turn, and the estimate counts it) and returns the rows so far.
    """
    start = time.monotonic()
    low, high = parse_turns(turns) if not isinstance(turns, tuple) else turns
    teacher = as_endpoints(config)
    users = (
        as_endpoints(user)
        if user is not None
        else as_endpoints([dataclasses.replace(e, max_tokens=256) for e in teacher])
    )
    rows, _ = instruction_rows(instructions, instruction_source)  # an Alpaca input joins the first user turn
    if instruction_source is not None:
        instruction_source = InstructionSource.parse(instruction_source).value
    version = prompt_hash(system_message)
    dialogues: list[_Dialogue] = []
    for i, row in enumerate(rows):
        row["instruction_source"] = row["instruction_source"] or instruction_source
        text = row["instruction"]
        if row.get("error") or not isinstance(text, str) or not text.strip():
            row["error"] = row.get("error") or "no instruction to answer"
            continue
        planned = _draw_turns(text, i, low, high, seed)
        dialogues.append(_Dialogue(i, planned, [{"role": "user", "content": text}]))
    if not dry_run and dialogues:
        # credentials and a budget too small for one request fail here, before anything is paid
        check_before_sending(
            [teacher_messages(d.messages, system_message) for d in dialogues], teacher, store, prompt_version=version
        )
        if any(d.planned > 1 for d in dialogues):
            for e in users:
                e.api_key()
    tally = _Tally()
    pending: list[tuple[_Dialogue, int]] = []  # dry run: (dialogue, step) whose request is not in the store
    if dry_run or teacher[0].batch_api:
        _play_rounds(dialogues, teacher, users, store, version, system_message, high, dry_run, tally, pending)
    else:
        run_sync(_play_streaming(dialogues, teacher, users, store, version, system_message, tally))
    if dry_run:
        _print_estimate(dialogues, pending, teacher[0], users[0], system_message, len(rows))
    out_rows = _rows(rows, dialogues, version)
    out = dialogue_rows_to_dataset(out_rows)
    if not return_report:
        return out
    removed: Counter[str] = Counter()
    examples: dict[str, list[str]] = defaultdict(list)
    for row in out_rows:
        if row["complete"]:
            continue
        reason = failure_reason(row["error"]) if row["error"] else "not sent"
        if row["error"] == "no instruction to answer":
            reason = row["error"]
        removed[reason] += 1
        if row["error"] and len(examples[reason]) < 3:
            examples[reason].append(row["error"])
    report = StepReport(
        step="dialogues",
        rows_in=len(rows),
        rows_out=sum(r["complete"] for r in out_rows),
        removed=dict(removed),
        examples=dict(examples),
        seconds=round(time.monotonic() - start, 3),
        details={
            "asked": tally.asked,
            "failed": tally.failed,
            "failures": dict(tally.failures),
            "not_sent": tally.unsent,
            "new_cost_usd": round(tally.spent, 6),
            "dialogues": len(dialogues),
            "complete": sum(r["complete"] for r in out_rows),
            "end_reasons": dict(Counter(r["end_reason"] for r in out_rows)),
            "turns": {str(k): v for k, v in sorted(Counter(r["turns"] for r in out_rows).items())},
            "steps": tally.step_list(),
            "from_cache": tally.from_cache,
            "to_send": tally.sent,
        },
    )
    return out, report


@dataclass
class _Tally:
    """What a run asked, by turn step (0: the first assistant turn, 1: the simulator's next question, ...)."""

    asked: int = 0
    unsent: int = 0
    failed: int = 0
    sent: int = 0
    from_cache: int = 0
    spent: float = 0.0
    failures: Counter = field(default_factory=Counter)
    steps: dict = field(default_factory=dict)  # step -> {"requests", "sent"}

    def step_list(self) -> list[dict[str, Any]]:
        return [{"step": s, "role": "assistant" if s % 2 == 0 else "user", **c} for s, c in sorted(self.steps.items())]

    def record(self, d: _Dialogue, step: int, r: Response, key: str, from_store: bool, model: str) -> None:
        """One answered (or failed) request of ``d`` at ``step``: the dialogue grows, or ends with its reason."""
        role = "assistant" if step % 2 == 0 else "user"
        counts = self.steps.setdefault(step, {"requests": 0, "sent": 0})
        counts["requests"] += 1
        self.asked += 1
        if from_store:
            self.from_cache += 1
        else:
            counts["sent"] += 1
            self.sent += 1
            self.spent += r.cost_usd
        if not r.ok:
            d.end_reason, d.error = ("not_sent" if not_sent(r.error) else "error"), r.error
            if not_sent(r.error):
                self.unsent += 1
            else:
                self.failed += 1
                self.failures[failure_reason(r.error)] += 1
            return
        d.prompt_tokens += r.usage.prompt_tokens
        d.completion_tokens += r.usage.completion_tokens
        d.cost += r.cost_usd
        if role == "user":
            d.user_model = r.model or model
            if USER_STOP_MARKER in r.text:
                d.end_reason = "user_stop"
                return
            d.messages.append({"role": "user", "content": r.text})
        else:
            d.teacher_model = r.model or model
            d.finish_reason, d.last_key = r.finish_reason, key
            d.messages.append({"role": "assistant", "content": r.text})
            if d.turns >= d.planned:
                d.end_reason = "max_turns"


def _request(d: _Dialogue, step: int, system_message: str, version: str) -> tuple[str, Messages, str]:
    """(pool, messages, prompt version) of ``d``'s request at ``step``."""
    if step % 2 == 0:
        return "teacher", teacher_messages(d.messages, system_message), version
    return "user", simulator_messages(d.messages), USER_PROMPT_VERSION


async def _play_streaming(dialogues, teacher, users, store, version, system_message, tally: _Tally) -> None:
    """Every dialogue plays as its own sequence: the moment a turn is answered, its next request is queued, so
    turns of different dialogues interleave and no dialogue waits for a round. A dialogue with more requests
    still to go is served first (the longest chain sets the end of the run)."""
    import asyncio

    models = {"teacher": teacher[0].model, "user": users[0].model}

    async def play(session: TeacherSession, d: _Dialogue) -> None:
        step, last = 0, 2 * d.planned - 2
        while d.end_reason is None:
            pool, msgs, pv = _request(d, step, system_message, version)
            key, r, from_store = await session.ask(msgs, pool, pv, priority=step - last)
            tally.record(d, step, r, key, from_store, models[pool])
            step += 1
        session.expect(-(last + 1 - step))  # a stop marker or a failure ends it early

    with Store(store) as st:
        total = sum(2 * d.planned - 1 for d in dialogues)
        async with TeacherSession({"teacher": teacher, "user": users}, st, desc="dialogues", total=total) as session:
            await asyncio.gather(*(play(session, d) for d in dialogues))


def _play_rounds(dialogues, teacher, users, store, version, system_message, high, dry_run, tally, pending) -> None:
    """Round by round (the Batch API: one batch per turn step; a dry run: what the store holds)."""
    budget = teacher[0].budget_usd
    for step in range(2 * high - 1):
        active = [d for d in dialogues if d.end_reason is None]
        if not active:
            break
        requests = [_request(d, step, system_message, version) for d in active]
        pool, prompt_version = requests[0][0], requests[0][2]
        endpoints = teacher if pool == "teacher" else users
        msgs = [m for _, m, _ in requests]
        keys = request_keys(msgs, endpoints, prompt_version=prompt_version)
        with Store(store) as st:
            cached = st.get_many(keys)
        if dry_run:
            for d, k in zip(active, keys):
                if k not in cached:
                    pending.append((d, step))
                    d.end_reason, d.error = "not_sent", "dry run: not sent"
            answered = [(d, k) for d, k in zip(active, keys) if k in cached]
            active, keys = [d for d, _ in answered], [k for _, k in answered]
            responses = [cached[k] for k in keys]
        elif budget is not None and budget - tally.spent <= 0:
            responses = [cached.get(k) or Response(None, error=_budget_note(budget)) for k in keys]
        else:
            if budget is not None:
                endpoints = [dataclasses.replace(e, budget_usd=budget - tally.spent) for e in endpoints]
            turn = step // 2 + 1 if pool == "teacher" else step // 2 + 2  # a user step writes the next question
            desc = f"turn {turn}/{high} {'teacher' if pool == 'teacher' else 'user'}"
            keys, responses = keyed_chat_completions(msgs, endpoints, store, desc=desc, prompt_version=prompt_version)
        for d, r, k in zip(active, responses, keys):
            tally.record(d, step, r, k, k in cached, endpoints[0].model)


def _rows(rows: list[dict[str, Any]], dialogues: list[_Dialogue], version: str) -> list[dict[str, Any]]:
    by_row = {d.row: d for d in dialogues}
    out = []
    for i, row in enumerate(rows):
        row = dict(row)
        for c in ("response", "finish_reason", "prompt_tokens", "completion_tokens", "cost_usd", "request_key"):
            row[c] = None
        d = by_row.get(i)
        if d is None:
            row.update(messages=[], turns=0, complete=False, end_reason="error")
            out.append(row)
            continue
        messages = list(d.messages)
        while messages and messages[-1]["role"] == "user":  # a user turn whose answer failed or was not sent
            messages.pop()
        answers = [m["content"] for m in messages if m["role"] == "assistant"]
        row.update(
            response=answers[0] if answers else None,
            response_prompt_version=version,
            teacher_model=d.teacher_model,
            finish_reason=d.finish_reason,
            prompt_tokens=d.prompt_tokens,
            completion_tokens=d.completion_tokens,
            cost_usd=d.cost,
            request_key=d.last_key,
            error=d.error,
            messages=messages if answers else [],
            turns=len(answers),
            complete=d.end_reason in ("max_turns", "user_stop"),
            end_reason=d.end_reason,
            user_model=d.user_model,
            user_prompt_version=USER_PROMPT_VERSION if d.planned > 1 else None,
        )
        out.append(row)
    return out


def dialogue_rows_to_dataset(rows: list[dict[str, Any]]) -> datasets.Dataset:
    """A Dataset with exactly the columns and types of :func:`~lamini_lm.records.dialogue_features`."""
    import datasets

    columns = {c: [r.get(c) for r in rows] for c in DIALOGUE_COLUMNS}
    for c in ("seed_ids", "topics", "messages"):
        columns[c] = [list(v or []) for v in columns[c]]
    for c in ("prompt_tokens", "completion_tokens", "turns"):
        columns[c] = [int(v or 0) for v in columns[c]]
    columns["cost_usd"] = [float(v or 0.0) for v in columns["cost_usd"]]
    columns["complete"] = [bool(v) for v in columns["complete"]]
    return datasets.Dataset.from_dict(columns, features=dialogue_features())


def _print_estimate(dialogues, pending, teacher: TeacherConfig, user: TeacherConfig, system_message, n_rows) -> None:
    """The dry run's line: requests still to send (each dialogue's remaining 2 x turns - 1), with the prompt growing
    by the expected length of every earlier turn."""
    expect = {"assistant": teacher.max_tokens // 2, "user": user.max_tokens // 2}
    worst = {"assistant": teacher.max_tokens, "user": user.max_tokens}
    system = {
        "assistant": estimate_tokens([{"content": system_message}]),
        "user": estimate_tokens([{"content": USER_SIMULATOR_PROMPT}, {"content": USER_SIMULATOR_OPENING}]),
    }
    totals = {r: Counter() for r in ("assistant", "user")}
    for d, step in pending:
        history = estimate_tokens(d.messages)
        history_max = history
        for s in range(step, 2 * d.planned - 1):
            role = "assistant" if s % 2 == 0 else "user"
            t = totals[role]
            t["requests"] += 1
            t["prompt"] += system[role] + history
            t["prompt_max"] += system[role] + history_max
            t["completion"] += expect[role]
            t["completion_max"] += worst[role]
            history += expect[role] + 4
            history_max += worst[role] + 4
    cost = cost_max = 0.0
    for role, cfg in (("assistant", teacher), ("user", user)):
        prices, t = price_table(cfg.prices), totals[role]
        cost += cost_usd(prices, cfg.model, t["prompt"], t["completion"], batch=cfg.batch_api)
        cost_max += cost_usd(prices, cfg.model, t["prompt_max"], t["completion_max"], batch=cfg.batch_api)
    a, u = totals["assistant"], totals["user"]
    print(
        f"dry run for dialogues: {len(dialogues):,} of {n_rows:,} rows to play, "
        f"{a['requests'] + u['requests']:,} requests to send (each dialogue 2 x turns - 1; the stored turns are "
        f"replayed): teacher {teacher.model} {a['requests']:,} requests, ~{a['prompt']:,} prompt tokens, "
        f"~{a['completion']:,} completion tokens; user simulator {user.model} {u['requests']:,} requests, "
        f"~{u['prompt']:,} prompt tokens, ~{u['completion']:,} completion tokens (half of max_tokens; the history "
        f"grows each turn); expected cost ${cost:,.4f} (at most ${cost_max:,.4f})"
    )


def run_generate_dialogues(
    task: DialogueArgs,
    output: OutputArgs,
    teacher: TeacherConfig | Sequence[TeacherConfig],
    system_message: str = SYSTEM_MESSAGE,
) -> tuple[datasets.Dataset, Manifest | None]:
    """Play a dialogue per instruction of ``task.input`` into the artifact ``output.output``.

    Returns ``(dataset, manifest)``; a dry run prints the estimate and writes nothing (manifest None). Raises
    :class:`~lamini_lm.generation.stage.GenerationFailed` after writing when too many turns failed.
    """
    start = time.monotonic()
    as_endpoints(teacher)
    users = user_config(task, teacher)
    check_output(output.output, DIALOGUES_STAGE, output.overwrite)
    store = output.store_path()
    ds, report = generate_dialogues(
        task.input,
        config=teacher,
        user=users,
        store=store,
        turns=task.turns,
        seed=task.seed,
        instruction_source=task.instruction_source,
        system_message=system_message,
        dry_run=output.dry_run,
        return_report=True,
    )
    if output.dry_run:
        return ds, None
    version = prompt_hash(system_message)
    name = "system_message" if version == PROMPT_HASHES["system_message"] else "custom_system_message"
    with Store(store) as st:
        answers = len(st)
    models = sorted({m for c in ("teacher_model", "user_model") for m in ds[c] if m})
    write_start = time.monotonic()
    with artifact_output(output.output, DIALOGUES_STAGE, output.overwrite) as tmp:
        _save_quietly(ds, tmp)
        d = report.details
        manifest = Manifest(
            stage=DIALOGUES_STAGE,
            config={
                "dialogues": task,
                "output": output,
                "teacher": _teacher_config(teacher),
                "user": _teacher_config(users),
            },
            inputs=[
                describe_input(task.input, role="input"),
                {**describe_input(store, role="teacher_store"), "answers": answers},
            ],
            rows=len(ds),
            tokens={"prompt": sum(ds["prompt_tokens"]), "completion": sum(ds["completion_tokens"])},
            cost_usd=round(sum(ds["cost_usd"]), 6),
            teacher_models=models,
            prompt_hashes={name: version, "user_simulator": USER_PROMPT_VERSION},
            reports=[report],
            timings={"generate_s": round(write_start - start, 3)},
            extra={k: d[k] for k in ("to_send", "from_cache", "not_sent", "complete", "end_reasons", "turns")},
        )
        manifest.timings["total_s"] = round(time.monotonic() - start, 3)
        manifest.save(tmp)
    _check_failures(report, output, teacher)
    return ds, manifest
