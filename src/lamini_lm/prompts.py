"""The paper's prompts, verbatim, versioned by a hash; and the Alpaca wrapper the students see.

Every generated row records :data:`PROMPT_VERSION` (or the per-prompt hash) so that a change to any text here
changes the request keys of the generation store and never silently mixes two prompt versions.

Example:
    >>> from lamini_lm.prompts import example_guided_prompt, wrap_instruction
    >>> print(example_guided_prompt(["Name a colour.", "Add 2 and 3.", "Tell a joke."], n=20).splitlines()[0])
    <example>Name a colour.</example>
    >>> wrap_instruction("Name a colour.", family="seq2seq")
    'Name a colour.'
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "ALPACA_WRAPPER",
    "EXAMPLE_GUIDED_TEMPLATE",
    "PROMPT_HASHES",
    "PROMPT_VERSION",
    "SYSTEM_MESSAGE",
    "TOPIC_GUIDED_TEMPLATE",
    "USER_SIMULATOR_OPENING",
    "USER_SIMULATOR_PROMPT",
    "USER_SIMULATOR_VERSION",
    "USER_STOP_MARKER",
    "Family",
    "detect_family",
    "example_guided_prompt",
    "format_examples",
    "prompt_hash",
    "topic_guided_prompt",
    "wrap_instruction",
]

# A registered model family's name ("seq2seq", "causal", or one added with lamini_lm.families.register_family).
Family = str

# SPEC section 3. The example block is formatted by format_examples(); {n} is 20 for Self-Instruct seeds and 10
# for the longer P3/FLAN seeds.
EXAMPLE_GUIDED_TEMPLATE = (
    "{examples}\n"
    "\n"
    "Generate {n} diverse examples that are similar to the provided examples.\n"
    "You do not need to provide a response to the generated examples.\n"
    "Each example must include an instruction.\n"
    "Each generated instruction can be either an imperative sentence or a question.\n"
    'Each example must start with the label "<example>" and end with the label "</example>".'
)

TOPIC_GUIDED_TEMPLATE = (
    "{examples}\n"
    "\n"
    'Generate {n} diverse examples that are similar to the provided examples with the topics "{topics}".\n'
    "You do not need to provide a response to the generated examples.\n"
    "Each example must include an instruction.\n"
    "Each generated instruction can be either an imperative sentence or a question.\n"
    'Each example must start with the label "<example>" and end with the label "</example>".'
)

# SPEC section 4: the system message of every response request.
SYSTEM_MESSAGE = "You are a helpful assistant, but you must respond the provided instructions as concise as possible."

# SPEC section 6: Alpaca's no-input template, with no trailing newline.
ALPACA_WRAPPER = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
    "\n\n### Instruction:\n{instruction}\n\n### Response:"
)


# Multi-turn dialogues (not in the paper): the system prompt of the model that plays the user. It sees the
# dialogue with the roles swapped (its own earlier messages as "assistant", the teacher's answers as "user") and
# writes the user's next message; it may end the dialogue by answering with USER_STOP_MARKER.
USER_STOP_MARKER = "[END OF DIALOGUE]"
USER_SIMULATOR_PROMPT = (
    "You are role-playing a curious human user who is talking to an AI assistant. You asked the first question "
    "yourself; the assistant's replies are shown to you as the other party's messages. Write your next message to "
    "the assistant: a natural follow-up that asks for more detail, a related task, a clarification or a "
    "correction. Write only the user's message, in the first person, without greetings or thanks, and never "
    "answer your own question. If the conversation has nothing more worth asking, reply with exactly "
    f"{USER_STOP_MARKER}"
)
# The simulator's view of a dialogue starts with this "user" line (the assistant's greeting, seen from the other
# side), so that the roles it sees alternate user/assistant from the start as strict chat templates require.
USER_SIMULATOR_OPENING = "Hello! What would you like to ask me?"


def prompt_hash(text: str) -> str:
    """A short, stable version id of a prompt text (first 12 hex digits of its SHA-256)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


PROMPT_HASHES = {
    "example_guided": prompt_hash(EXAMPLE_GUIDED_TEMPLATE),
    "topic_guided": prompt_hash(TOPIC_GUIDED_TEMPLATE),
    "system_message": prompt_hash(SYSTEM_MESSAGE),
    "alpaca_wrapper": prompt_hash(ALPACA_WRAPPER),
}
# One id for the whole prompt set, recorded in datasets and cards.
PROMPT_VERSION = prompt_hash("\x00".join(PROMPT_HASHES[k] for k in sorted(PROMPT_HASHES)))
# The user simulator's version (not one of the paper's prompts, so not in PROMPT_HASHES or PROMPT_VERSION).
USER_SIMULATOR_VERSION = prompt_hash(USER_SIMULATOR_PROMPT + "\x00" + USER_SIMULATOR_OPENING)


def format_examples(examples: Sequence[str]) -> str:
    """``<example>...</example>`` lines, one per seed instruction, in the order given."""
    if not examples:
        raise ValueError("at least one example instruction is needed")
    return "\n".join(f"<example>{e.strip()}</example>" for e in examples)


def example_guided_prompt(examples: Sequence[str], n: int = 20) -> str:
    """The example-guided generation prompt (SPEC 3): 3 seed examples, asking for ``n`` new ones."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return EXAMPLE_GUIDED_TEMPLATE.format(examples=format_examples(examples), n=n)


def topic_guided_prompt(examples: Sequence[str], topics: Sequence[str], n: int = 20) -> str:
    """The topic-guided generation prompt (SPEC 3): seed examples plus Wikipedia topics joined by ', '."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not topics:
        raise ValueError("at least one topic is needed for topic-guided generation")
    return TOPIC_GUIDED_TEMPLATE.format(examples=format_examples(examples), n=n, topics=", ".join(topics))


def wrap_instruction(instruction: str, family: Any) -> str:
    """What a student of ``family`` (a registered name or a :class:`lamini_lm.families.Family`) sees for
    ``instruction``: the Alpaca wrapper for causal students, the raw text for seq2seq, a registered family's own.

    The same wrapping is used in training, inference and evaluation.
    """
    from lamini_lm.families import get_family

    return get_family(family).wrap(instruction)


def detect_family(model: str | os.PathLike | Mapping | Any) -> Family:
    """The name of the registered family ``model`` belongs to (:func:`lamini_lm.families.detect_family`):
    ``"seq2seq"`` for an encoder-decoder model, ``"causal"`` for a decoder, unless a registered family claims it.

    ``model`` is a folder, a Hub id, a ``PretrainedConfig``, a model (anything with a ``.config``) or the dict
    read from a ``config.json``. The family picks :func:`wrap_instruction`'s wrapping and the Auto class.
    """
    from lamini_lm.families import detect_family as detect

    return detect(model).name
