"""The paper's A/B/C/D rubric, applied by a judge model through the generation stage's client.

The paper had people grade each answer to 114 user-oriented instructions:

* A: valid, acceptable and satisfying;
* B: acceptable but has minor errors that can be improved;
* C: relevant and responds to the instruction, but has significant errors in the content;
* D: invalid and unacceptable.

``lamini-lm judge`` asks any OpenAI-compatible model to apply the same definitions. Requests go through
:func:`lamini_lm.generation.chat_completions`, so they are cached in a SQLite store (a re-run sends only what is
missing), resumable after an interruption and costed (progress bar with tokens and $, ``--budget_usd``).

How a judge's reply becomes a grade (:func:`parse_rating`), first rule that matches wins:

1. ``label``: a grade after a label word: "Rating: B", "Grade: A-", "**Rating:** c", "Score = D";
2. ``leading``: the reply starts with the grade alone: "B", "b)", "**C**", "(A)", "D.", "A - ...";
3. ``phrase``: a capital grade after a verb of grading: "I'd give it a B+", "I would rate this answer C";
4. otherwise the reply is **unparsed**: recorded with its raw text and counted apart, never guessed. "A good
   answer" (a word, not a grade), "B or C", "B/C" and "between B and C" (two grades offered) are unparsed.
   ``+``/``-`` modifiers are dropped (B+ is B).

Example:
    >>> from lamini_lm.evaluation.judge import parse_rating
    >>> [parse_rating(t).grade for t in ["Rating: B", "b)", "I'd give it a B+", "Grade: A-", "**C**", "Nice."]]
    ['B', 'B', 'B', 'A', 'C', None]
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

from lamini_lm.errors import UsageError
from lamini_lm.io import write_text_atomic
from lamini_lm.prompts import prompt_hash

__all__ = [
    "GRADES",
    "GRADE_DEFINITIONS",
    "DIALOGUE_JUDGE_TEMPLATE",
    "JUDGE_TEMPLATE",
    "JudgeConfig",
    "Judgement",
    "Rating",
    "judge_answers",
    "judge_dialogue_messages",
    "judge_messages",
    "main",
    "parse_rating",
    "run_judge",
    "rubric_counts",
]

logger = logging.getLogger(__name__)

GRADES = ("A", "B", "C", "D")

# The paper's definitions, verbatim.
GRADE_DEFINITIONS = {
    "A": "valid, acceptable and satisfying",
    "B": "acceptable but has minor errors that can be improved",
    "C": "relevant and responds to the instruction, but has significant errors in the content",
    "D": "invalid and unacceptable",
}

JUDGE_TEMPLATE = (
    "You are grading the answer of an AI assistant to a user's instruction. Use exactly one of these grades:\n"
    + "".join(f"{g}: the answer is {d};\n" for g, d in GRADE_DEFINITIONS.items())
    + "\n[Instruction]\n{instruction}\n\n[Answer]\n{answer}\n\n"
    'Reply with the grade on the first line as "Rating: X" (X is A, B, C or D), then one sentence saying why.'
)
JUDGE_PROMPT_VERSION = prompt_hash(JUDGE_TEMPLATE)

# A dialogue's last answer, rated with the earlier turns as context (``lamini-lm judge --two_turn``).
DIALOGUE_JUDGE_TEMPLATE = (
    "You are grading the last answer of an AI assistant in a conversation with a user. Judge only that answer, "
    "taking the earlier turns into account (a follow-up must be answered in their light). Use exactly one of these "
    "grades:\n"
    + "".join(f"{g}: the answer is {d};\n" for g, d in GRADE_DEFINITIONS.items())
    + "\n[Conversation]\n{conversation}\n\n[Last answer]\n{answer}\n\n"
    'Reply with the grade on the first line as "Rating: X" (X is A, B, C or D), then one sentence saying why.'
)
DIALOGUE_JUDGE_PROMPT_VERSION = prompt_hash(DIALOGUE_JUDGE_TEMPLATE)


@dataclasses.dataclass(frozen=True)
class Rating:
    """A parsed judge reply: ``grade`` in A-D or ``None`` (unparsed), and the rule that matched."""

    grade: str | None
    rule: str


_LABEL = re.compile(
    r"\b(?:rating|grade|score|verdict|evaluation)\b\s*(?:is|of)?\s*[*_]*\s*[:=\-]?\s*[*_\"'(\[]*\s*([ABCD])(?![A-Za-z])",
    re.IGNORECASE,
)
# The letter must stand alone: followed by the end, a line break, punctuation or a dash, never by a word ("A good").
_LEADING = re.compile(r"^[\s*_\"'(\[]*([ABCDabcd])[+\-]?(?=$|\n|[*_\"')\].:,;!]|[ \t]+[\-\u2013\u2014(:])")
# "B or C", "B/C", "between B and C": two grades offered, so none is chosen.
_SECOND_GRADE = re.compile(
    r"^[+\-]?[*_\"')\]]*\s*(?:and|or|/|to|-|\u2013)\s*[*_\"'(\[]*[ABCD](?![A-Za-z])", re.IGNORECASE
)
_PHRASE = re.compile(
    r"\b(?:give|giving|gave|rate|rating|rated|grade|grading|graded|assign|assigned|deserves?|earns?|gets?)\b"
    r"[^.\n]{0,40}?(?:\ban?\s+)?[*_\"'(\[]*([ABCD])[+\-]?(?![A-Za-z0-9])"
)


def parse_rating(text: str | None) -> Rating:
    """The grade in a judge's reply by the module's documented rules, or ``Rating(None, "unparsed")``."""
    if not text or not text.strip():
        return Rating(None, "unparsed")
    for rule, pattern in (("label", _LABEL), ("leading", _LEADING), ("phrase", _PHRASE)):
        match = pattern.search(text.strip())
        if match:
            if _SECOND_GRADE.match(text.strip()[match.end(1) :]):
                return Rating(None, "unparsed")
            return Rating(match.group(1).upper(), rule)
    return Rating(None, "unparsed")


def judge_messages(instruction: str, answer: str) -> list[dict[str, str]]:
    """The chat request asking the judge to grade ``answer`` to ``instruction``."""
    return [{"role": "user", "content": JUDGE_TEMPLATE.format(instruction=instruction, answer=answer)}]


def judge_dialogue_messages(context: Sequence[dict], answer: str) -> list[dict[str, str]]:
    """The chat request asking the judge to grade ``answer``, the reply to the last user turn of ``context``."""
    names = {"user": "User", "assistant": "Assistant"}
    conversation = "\n\n".join(f"{names.get(m['role'], m['role'])}: {m['content']}" for m in context)
    return [{"role": "user", "content": DIALOGUE_JUDGE_TEMPLATE.format(conversation=conversation, answer=answer)}]


@dataclasses.dataclass
class Judgement:
    """One graded answer: ``grade`` None with ``error`` set when the judge failed, with ``rule == "unparsed"``
    when it answered something without a readable grade (``raw`` keeps its text)."""

    id: str
    prompt: str
    answer: str
    grade: str | None
    rule: str
    raw: str | None
    error: str | None = None
    context: list | None = None  # the dialogue before the answer (two-turn judging), None for one instruction


def judge_answers(
    prompts: Sequence[str],
    answers: Sequence[str],
    config,
    store: str | os.PathLike,
    *,
    ids: Sequence[str] | None = None,
    desc: str = "judge",
    dry_run: bool = False,
    contexts: Sequence[Sequence[dict] | None] | None = None,
) -> list[Judgement]:
    """Grade each answer with the judge model in ``config`` (a :class:`lamini_lm.generation.TeacherConfig`).

    ``contexts``: per answer, the dialogue it replies to (ending on the user turn ``prompts`` holds), or None; an
    answer with a context is graded as a dialogue's last answer (:data:`DIALOGUE_JUDGE_TEMPLATE`).

    Example:
        >>> from lamini_lm.generation import TeacherConfig
        >>> cfg = TeacherConfig(base_url="http://127.0.0.1:8000/v1", model="judge", temperature=0.0)
        >>> judge_answers(["Name a colour."], ["Blue."], cfg, "judge.sqlite")  # doctest: +SKIP
    """
    from lamini_lm.generation import chat_completions

    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
    ids = list(ids) if ids is not None else [str(i) for i in range(len(prompts))]
    contexts = list(contexts) if contexts is not None else [None] * len(prompts)
    single = [k for k, c in enumerate(contexts) if not c]
    multi = [k for k, c in enumerate(contexts) if c]
    replies: list = [None] * len(prompts)
    for picked, version, make in (
        (single, JUDGE_PROMPT_VERSION, lambda k: judge_messages(prompts[k], answers[k])),
        (multi, DIALOGUE_JUDGE_PROMPT_VERSION, lambda k: judge_dialogue_messages(contexts[k], answers[k])),
    ):
        if picked:
            got = chat_completions(
                [make(k) for k in picked], config, store, desc=desc, dry_run=dry_run, prompt_version=version
            )
            for k, r in zip(picked, got):
                replies[k] = r
    out = []
    for i, p, a, r, c in zip(ids, prompts, answers, replies, contexts):
        c = list(c) if c else None
        if r.error is not None or r.text is None:
            out.append(Judgement(i, p, a, None, "error", None, r.error or "no text", c))
        else:
            rating = parse_rating(r.text)
            out.append(Judgement(i, p, a, rating.grade, rating.rule, r.text, context=c))
    unparsed = sum(j.rule == "unparsed" for j in out)
    if unparsed:
        logger.warning("%d of %d judge replies had no readable grade (kept as 'unparsed')", unparsed, len(out))
    return out


def rubric_counts(judgements: Sequence[Judgement]) -> dict[str, int]:
    """Counts per grade A-D, plus ``unparsed`` (replies without a grade) and ``failed`` (requests that failed)."""
    counts = {g: 0 for g in GRADES} | {"unparsed": 0, "failed": 0}
    for j in judgements:
        key = j.grade or ("failed" if j.rule == "error" else "unparsed")
        counts[key] += 1
    return counts


def _judge_config_class():
    from lamini_lm.generation import TeacherConfig

    @dataclasses.dataclass
    class JudgeTeacherConfig(TeacherConfig):
        """The judge endpoint: the teacher client's settings with judge defaults."""

        # Changed defaults: a judge should be deterministic and short.
        model: str = dataclasses.field(default="gpt-4o-mini", metadata={"help": "judge model name"})
        temperature: float = dataclasses.field(default=0.0, metadata={"help": "judge sampling temperature"})
        max_tokens: int = dataclasses.field(default=128, metadata={"help": "longest judge reply, in tokens"})

    return JudgeTeacherConfig


@dataclasses.dataclass
class JudgeConfig:
    """Settings of ``lamini-lm judge`` (the judge endpoint's settings are the teacher client's)."""

    student: str = dataclasses.field(
        default=None,
        metadata={"help": "student folder or Hub id to answer the instructions (also the first argument)"},
    )
    answers: str = dataclasses.field(
        default=None, metadata={"help": "JSONL of already generated answers (id, prompt, answer) instead of a student"}
    )
    instructions: list[str] = dataclasses.field(
        default=None,
        metadata={"help": "local user-oriented instruction file(s) (default: the public 252, downloaded from GitHub)"},
    )
    output_dir: str = dataclasses.field(default=None, metadata={"help": "where to write (default: eval/<name>/judge)"})
    store: str = dataclasses.field(
        default=None,
        metadata={"help": "cache of the judge's replies (default: the teacher cache every run shares, as generate)"},
    )
    limit: int = dataclasses.field(default=None, metadata={"help": "judge only the first N instructions"})
    wrapper: bool = dataclasses.field(default=True, metadata={"help": "wrap prompts as the student was trained"})
    max_new_tokens: int = dataclasses.field(default=256, metadata={"help": "longest student answer, in tokens"})
    batch_size: int = dataclasses.field(default=8, metadata={"help": "student generation batch size"})
    device: str = dataclasses.field(default=None, metadata={"help": "student device (default: cuda if available)"})
    name: str = dataclasses.field(default=None, metadata={"help": "name of the student in outputs and the plot"})
    reference: list[str] = dataclasses.field(
        default_factory=lambda: ["all"], metadata={"help": "paper models shown in the plot ('all', or names)"}
    )
    dry_run: bool = dataclasses.field(default=False, metadata={"help": "estimate the judge's cost, send nothing"})
    two_turn: bool = dataclasses.field(
        default=False,
        metadata={
            "help": "rate the last answer of the shipped two-turn set (a question, then a follow-up), with the "
            "dialogue as context"
        },
    )

    def __post_init__(self):
        from lamini_lm.config import check_range

        if not self.student and not self.answers:
            raise UsageError("give a student (folder or Hub id) or --answers FILE")
        if self.student and self.answers:
            raise UsageError("give a student or --answers FILE, not both")
        for name in ("limit", "max_new_tokens", "batch_size"):
            check_range(name, getattr(self, name), 1)
        if self.two_turn and self.instructions:
            raise UsageError("--two_turn uses the shipped two-turn set: drop --instructions")


def _write_jsonl(path: Path, rows: Sequence[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _read_answers(path: str | os.PathLike) -> list[dict]:
    """Rows ``id, prompt, answer`` (and ``context``, the dialogue before the answer, when the file has it)."""
    from lamini_lm.io import field_value, iter_records

    rows = []
    for n, row in iter_records(str(path)):
        item = {
            "id": str(row.get("id", n - 1)),
            "prompt": field_value(row, "prompt", str(path), n),
            "answer": field_value(row, "answer", str(path), n),
        }
        if row.get("context") is not None:
            item["context"] = field_value(row, "context", str(path), n, kind=list)
        rows.append(item)
    return rows


def _two_turn_answers(cfg: JudgeConfig, out: Path) -> list[dict]:
    """The student's answers to both turns of the two-turn set; rows carry the second turn as ``prompt``, its
    answer, and the dialogue before it as ``context``. Reused from ``answers.jsonl`` on a resumed run."""
    from lamini_lm.evaluation.harness import resolve_device
    from lamini_lm.evaluation.two_turn import TWO_TURN_SET
    from lamini_lm.inference import generate, load_student

    items = TWO_TURN_SET[: cfg.limit] if cfg.limit else TWO_TURN_SET
    cached = out / "answers.jsonl"
    if cached.exists():
        rows = _read_answers(cached)
        if [r["prompt"] for r in rows] == [it["turns"][1] for it in items] and all("context" in r for r in rows):
            logger.info("reusing the student's answers in %s", cached)
            return rows
    model, tokenizer = load_student(cfg.student)
    model.to(resolve_device(cfg.device))
    kw = {"tokenizer": tokenizer, "batch_size": cfg.batch_size, "max_new_tokens": cfg.max_new_tokens}
    kw.update(do_sample=False, progress=True)
    first = [[{"role": "user", "content": it["turns"][0]}] for it in items]
    answers = generate(model, first, **kw)
    second = [[*d, {"role": "assistant", "content": a}, {"role": "user", "content": it["turns"][1]}]
              for d, a, it in zip(first, answers, items)]  # fmt: skip
    finals = generate(model, second, **kw)
    rows = [{"id": it["id"], "prompt": it["turns"][1], "answer": a, "context": d}
            for it, a, d in zip(items, finals, second)]  # fmt: skip
    _write_jsonl(cached, rows)
    return rows


def _student_answers(cfg: JudgeConfig, out: Path) -> list[dict]:
    """The student's answers, reused from ``answers.jsonl`` when it holds the same prompts (a resumed run)."""
    from lamini_lm.builders.user_oriented import load_user_oriented
    from lamini_lm.inference import generate

    ds = load_user_oriented(cfg.instructions) if cfg.instructions else load_user_oriented()
    if cfg.limit:
        ds = ds.select(range(min(cfg.limit, len(ds))))
    ids, prompts = list(ds["id"]), list(ds["prompt"])
    cached = out / "answers.jsonl"
    if cached.exists():
        rows = _read_answers(cached)
        if [r["prompt"] for r in rows] == prompts:
            logger.info("reusing the student's answers in %s", cached)
            return rows
    answers = generate(
        cfg.student,
        prompts,
        wrapper=cfg.wrapper,
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.batch_size,
        device=cfg.device or "auto",
        do_sample=False,
        progress=True,
    )
    rows = [{"id": i, "prompt": p, "answer": a} for i, p, a in zip(ids, prompts, answers)]
    _write_jsonl(cached, rows)
    return rows


def run_judge(cfg: JudgeConfig, judge) -> dict:
    """Answer (or read) the instructions, grade every answer with ``judge`` (a ``TeacherConfig``), write
    ``answers.jsonl``, ``judgements.jsonl``, ``rubric.json``, ``rubric.png`` and the ``lamini_lm.json`` manifest
    into the output folder; return the summary (``counts`` per grade). Re-running resumes: the student's answers
    are reused and the judge's replies come from its cache."""
    from lamini_lm.artifacts import MANIFEST_FILE, Manifest, check_output, describe_input
    from lamini_lm.evaluation.plots import plot_rubric
    from lamini_lm.generation.store import default_store_path

    name = cfg.name or Path(str(cfg.student or cfg.answers).rstrip("/")).name
    out = Path(cfg.output_dir or Path("eval") / name / "judge")
    check_output(out, "judge", flag="--output_dir")
    inputs = [describe_input(cfg.answers or cfg.student, role="answers" if cfg.answers else "model")]
    inputs += [describe_input(f, role="instructions") for f in cfg.instructions or []]
    record = {"stage": "judge", "config": {"judge": cfg, "endpoint": judge}, "inputs": inputs}
    if not cfg.dry_run and not (out / MANIFEST_FILE).is_file():  # marks the folder as this stage's while it runs
        out.mkdir(parents=True, exist_ok=True)
        Manifest(**record, extra={"complete": False}).save(out)
    if cfg.answers:
        rows = _read_answers(cfg.answers)
    else:
        rows = _two_turn_answers(cfg, out) if cfg.two_turn else _student_answers(cfg, out)
    if cfg.answers and cfg.limit:
        rows = rows[: cfg.limit]
    judgements = judge_answers(
        [r["prompt"] for r in rows],
        [r["answer"] for r in rows],
        judge,
        cfg.store or default_store_path(),
        ids=[r["id"] for r in rows],
        dry_run=cfg.dry_run,
        contexts=[r.get("context") for r in rows],
    )
    counts = rubric_counts(judgements)
    summary = {"model": name, "judge": judge.model, "prompt_version": JUDGE_PROMPT_VERSION, "n": len(rows)}
    summary["counts"] = counts
    if cfg.dry_run:
        return summary
    _write_jsonl(out / "judgements.jsonl", [dataclasses.asdict(j) for j in judgements])
    write_text_atomic(out / "rubric.json", json.dumps(summary, indent=2) + "\n")
    summary["plot"] = str(
        plot_rubric(
            {name: counts}, out / "rubric.png", reference=cfg.reference, title=f"Rubric grades by {judge.model}"
        )
    )
    Manifest(
        **record,
        rows=len(rows),
        teacher_models=[judge.model],
        prompt_hashes={"judge": DIALOGUE_JUDGE_PROMPT_VERSION if cfg.two_turn else JUDGE_PROMPT_VERSION},
        extra={"counts": counts, "model": name, "complete": True},
    ).save(out)
    return summary


def main(argv: list[str] | None = None, prog: str = "lamini-lm judge") -> int:
    """Rate a student's answers to user-oriented instructions A/B/C/D with a judge model; count and plot them."""
    from lamini_lm.config import StageParser

    parser = StageParser(
        [JudgeConfig, _judge_config_class()],
        prog=prog,
        description=main.__doc__,
        positionals=("student",),
        examples="  lamini-lm judge runs/flan-t5-77m --instructions user_oriented.jsonl --model gpt-4o-mini\n"
        "  lamini-lm judge --answers answers.jsonl --base_url http://127.0.0.1:8000/v1 --model judge --dry_run",
    )
    cfg, judge = parser.parse(argv)
    summary = run_judge(cfg, judge)
    if cfg.dry_run:
        return 0
    print(" ".join(f"{g}={n}" for g, n in summary["counts"].items()))
    print(f"wrote {Path(summary['plot']).parent} (judgements.jsonl, rubric.json, rubric.png, lamini_lm.json)")
    return 0
