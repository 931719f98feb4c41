"""The record types and the LaMini schema: the one thing every stage shares.

Data flows one way (sources -> generation -> quality -> builders -> train -> evaluation -> publishing) and every
stage reads and writes ``datasets`` tables whose columns are declared here:

* :func:`lamini_features` -- the released LaMini-instruction schema (SPEC 5): ``instruction``, ``response``,
  ``instruction_source``; what students train on.
* :func:`generation_features` -- that schema plus provenance and usage columns; what generation writes (one row
  per instruction, failed rows carry ``error`` instead of a response).
* :func:`dialogue_features` -- the generation schema plus ``messages`` (the dialogue as a list of ``{role,
  content}``, user first, no system message), ``turns``, ``complete``, ``end_reason``, ``user_model`` and
  ``user_prompt_version``; what ``lamini-lm generate dialogues`` and the multi-turn builders write. A row's
  ``instruction`` is the first user turn and ``response`` the first assistant turn, so a dialogue is also a valid
  single-turn row.
* :func:`join_input` -- how a source row with a separate ``input`` (Alpaca, the user-oriented set) becomes one
  ``instruction``: the text the teacher is asked, and what dedup, decontamination, training and the judge read.

Example:
    >>> from lamini_lm.records import Instruction, InstructionSource
    >>> ins = Instruction("Name three primary colours.", source=InstructionSource.SELF_INSTRUCT_WITHOUT_TOPIC)
    >>> ins.to_row()["instruction_source"]
    'self_instruct_without_topic'
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # datasets is imported lazily so that `lamini-lm --help` stays fast
    import datasets

__all__ = [
    "DIALOGUE_COLUMNS",
    "DIALOGUE_END_REASONS",
    "GENERATION_COLUMNS",
    "INPUT_SEPARATOR",
    "LAMINI_COLUMNS",
    "Instruction",
    "InstructionSource",
    "LaMiniExample",
    "Response",
    "TEACHER_COLUMNS",
    "TEACHER_RESPONSE_IDS",
    "Usage",
    "dialogue_features",
    "generation_features",
    "teacher_logits_features",
    "join_input",
    "lamini_features",
]


INPUT_SEPARATOR = "\n\n"


def join_input(instruction: str, input: str | None = None) -> str:
    """One ``instruction`` from an instruction and its optional ``input``: the instruction, a blank line, the input.

    The library's one join, used wherever a row arrives with a separate ``input`` column (Alpaca's 40% of rows with
    an input, the user-oriented instructions): what the teacher is asked and what the LaMini schema stores as
    ``instruction``, so dedup, decontamination, training and the judge see the input with no change of their own.
    A blank line is how the released LaMini-instruction data writes an instruction with its context (its card's
    example: ``"What is the capital of Australia?\\n\\nIs Canberra the only city ..."``). With an input both parts
    are stripped; an empty or missing input gives the instruction unchanged (so rows without one keep their
    request keys in the teacher cache).

    Example:
        >>> join_input("Rewrite the given sentence in passive voice.", "The cat chased the mouse.")
        'Rewrite the given sentence in passive voice.\\n\\nThe cat chased the mouse.'
        >>> join_input("Name three primary colours.", "")
        'Name three primary colours.'
    """
    if not isinstance(input, str) or not input.strip():
        return instruction
    return f"{(instruction or '').strip()}{INPUT_SEPARATOR}{input.strip()}"


class InstructionSource(str, Enum):
    """The seven values of ``instruction_source`` in the released dataset (SPEC 5)."""

    ALPACA = "alpaca"
    GENERATED_FLAN = "generated_flan"
    GENERATED_P3 = "generated_p3"
    ORIGINAL_FLAN = "original_flan"
    ORIGINAL_P3 = "original_p3"
    SELF_INSTRUCT_WITH_TOPIC = "self_instruct_with_topic"
    SELF_INSTRUCT_WITHOUT_TOPIC = "self_instruct_without_topic"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: str | InstructionSource) -> InstructionSource:
        """``InstructionSource`` from its string value, with an error that lists the valid ones."""
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown instruction_source {value!r}; expected one of: {valid}") from None

    @property
    def generated(self) -> bool:
        """True for sources whose instructions the teacher wrote (not taken from a dataset)."""
        return self in {
            InstructionSource.GENERATED_FLAN,
            InstructionSource.GENERATED_P3,
            InstructionSource.SELF_INSTRUCT_WITH_TOPIC,
            InstructionSource.SELF_INSTRUCT_WITHOUT_TOPIC,
        }


@dataclass(frozen=True)
class Usage:
    """Token usage of one teacher call, as the OpenAI API reports it."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens)


@dataclass(frozen=True)
class Instruction:
    """An instruction and where it came from.

    Args:
        text: the instruction itself.
        source: one of the seven :class:`InstructionSource` values.
        seed_ids: ids of the seed instructions shown to the teacher (generated instructions only).
        topics: Wikipedia category topics of a topic-guided prompt.
        subset: the P3/FLAN subset the seeds (or the original row) came from.
        prompt_version: hash of the prompt that produced it (:data:`lamini_lm.prompts.PROMPT_HASHES`).
        teacher_model: the model that wrote it (None for instructions taken from a dataset).
    """

    text: str
    source: InstructionSource
    seed_ids: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    subset: str | None = None
    prompt_version: str | None = None
    teacher_model: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise TypeError(f"Instruction.text must be a string, got {type(self.text).__name__}")
        object.__setattr__(self, "source", InstructionSource.parse(self.source))
        object.__setattr__(self, "seed_ids", tuple(self.seed_ids))
        object.__setattr__(self, "topics", tuple(self.topics))

    def to_row(self) -> dict[str, Any]:
        """The provenance columns of :func:`generation_features` for this instruction."""
        return {
            "instruction": self.text,
            "instruction_source": self.source.value,
            "seed_ids": list(self.seed_ids),
            "topics": list(self.topics),
            "subset": self.subset,
            "instruction_prompt_version": self.prompt_version,
            "instruction_model": self.teacher_model,
        }


@dataclass(frozen=True)
class Response:
    """A teacher's answer to one request, or the reason there is none.

    Exactly one of ``text`` and ``error`` is set: a failed request is a row with its reason, never a None row.
    ``token_logprobs`` (asked with ``--top_logprobs K``): per generated token, ``token_ids`` (the sampled id),
    ``top_ids`` and ``top_logprobs`` (the teacher's K most likely ids and their log-probs), kept with the answer.
    """

    text: str | None
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    error: str | None = None
    cost_usd: float = 0.0
    token_logprobs: dict[str, list] | None = None

    def __post_init__(self) -> None:
        if (self.text is None) == (self.error is None):
            raise ValueError("a Response has either text or error, not both and not neither")

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["usage"] = dataclasses.asdict(self.usage)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Response:
        d = dict(d)
        d["usage"] = Usage(**(d.get("usage") or {}))
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class LaMiniExample:
    """One row of the released dataset (SPEC 5): what a student trains on."""

    instruction: str
    response: str
    instruction_source: InstructionSource

    def __post_init__(self) -> None:
        for name in ("instruction", "response"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"LaMiniExample.{name} must be a string, got {type(getattr(self, name)).__name__}")
        object.__setattr__(self, "instruction_source", InstructionSource.parse(self.instruction_source))

    def to_row(self) -> dict[str, str]:
        return {
            "instruction": self.instruction,
            "response": self.response,
            "instruction_source": self.instruction_source.value,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> LaMiniExample:
        missing = [c for c in LAMINI_COLUMNS if c not in row]
        if missing:
            raise KeyError(f"row is missing column(s) {missing}; the LaMini schema needs {list(LAMINI_COLUMNS)}")
        return cls(row["instruction"], row["response"], row["instruction_source"])


LAMINI_COLUMNS = ("instruction", "response", "instruction_source")

# Columns generation adds to the LaMini ones. Order matters only for display.
GENERATION_COLUMNS = LAMINI_COLUMNS + (
    "seed_ids",  # ids of the seeds shown to the teacher (generated instructions)
    "topics",  # Wikipedia topics of a topic-guided prompt
    "subset",  # P3/FLAN subset
    "instruction_prompt_version",  # hash of the instruction-generation prompt, None for dataset instructions
    "instruction_model",  # teacher that wrote the instruction, None for dataset instructions
    "response_prompt_version",  # hash of the system message used for the response
    "teacher_model",  # teacher that wrote the response
    "finish_reason",  # the API's finish_reason of the response call
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "request_key",  # the exactly-once store's key of the response request
    "error",  # why there is no response (None when there is one)
)


def lamini_features() -> datasets.Features:
    """``datasets.Features`` of the LaMini schema: three strings."""
    import datasets

    return datasets.Features({c: datasets.Value("string") for c in LAMINI_COLUMNS})


def generation_features() -> datasets.Features:
    """``datasets.Features`` of a generation run's output (LaMini columns plus provenance and usage)."""
    import datasets

    string = datasets.Value("string")
    return datasets.Features(
        {
            "instruction": string,
            "response": string,
            "instruction_source": string,
            "seed_ids": datasets.List(string),
            "topics": datasets.List(string),
            "subset": string,
            "instruction_prompt_version": string,
            "instruction_model": string,
            "response_prompt_version": string,
            "teacher_model": string,
            "finish_reason": string,
            "prompt_tokens": datasets.Value("int64"),
            "completion_tokens": datasets.Value("int64"),
            "cost_usd": datasets.Value("float64"),
            "request_key": string,
            "error": string,
        }
    )


# Token-level distillation's sparse columns, one row of k per response token: the teacher's top-k token ids (int32)
# and log-probs (float16). `lamini-lm teacher-logits` writes them from a local teacher; `generate responses
# --top_logprobs K` from the served teacher's paid pass, with the ids it sampled (TEACHER_RESPONSE_IDS) so that
# training can check they are the tokens the student learns.
TEACHER_COLUMNS = ("teacher_token_ids", "teacher_logprobs")
TEACHER_RESPONSE_IDS = "teacher_response_ids"


def teacher_logits_features(response_ids: bool = False) -> datasets.Features:
    """``datasets.Features`` of the teacher's sparse columns (and, with ``response_ids``, the sampled ids)."""
    import datasets

    columns = {
        TEACHER_COLUMNS[0]: datasets.List(datasets.List(datasets.Value("int32"))),
        TEACHER_COLUMNS[1]: datasets.List(datasets.List(datasets.Value("float16"))),
    }
    if response_ids:
        columns[TEACHER_RESPONSE_IDS] = datasets.List(datasets.Value("int32"))
    return datasets.Features(columns)


# Columns a dialogue row adds to the generation ones.
DIALOGUE_COLUMNS = GENERATION_COLUMNS + (
    "messages",  # the dialogue: [{"role": "user"|"assistant", "content": ...}, ...], user first, no system message
    "turns",  # assistant turns in messages
    "complete",  # True only when the dialogue ended as planned (its turns, or the user simulator's stop marker)
    "end_reason",  # one of DIALOGUE_END_REASONS
    "user_model",  # the model that played the user (None for human data)
    "user_prompt_version",  # hash of the user simulator's system prompt (None for human data)
)

# Why a dialogue ended. Only the first two make it ``complete``.
DIALOGUE_END_REASONS = (
    "max_turns",  # it reached the turns planned for it
    "user_stop",  # the user simulator wrote the stop marker (lamini_lm.prompts.USER_STOP_MARKER)
    "error",  # a turn failed for good: ``error`` says why; ``messages`` holds the turns before it
    "not_sent",  # a turn was not sent (budget reached, dry run, interrupted): re-running continues it
    "source",  # taken from an existing dataset as it was (ShareGPT, UltraChat, OpenAssistant)
)


def dialogue_features() -> datasets.Features:
    """``datasets.Features`` of a dialogue row: :func:`generation_features` plus the :data:`DIALOGUE_COLUMNS`."""
    import datasets

    string = datasets.Value("string")
    features = generation_features()
    features["messages"] = datasets.List({"role": string, "content": string})
    features["turns"] = datasets.Value("int64")
    features["complete"] = datasets.Value("bool")
    features["end_reason"] = string
    features["user_model"] = string
    features["user_prompt_version"] = string
    return features
