"""What the multi-turn source builders share: their schema and how a messy human dialogue becomes a clean one.

Every multi-turn builder (ShareGPT, UltraChat, OpenAssistant) yields rows of :func:`dialogue_source_features`:
``id``, ``messages`` (``[{role, content}]``), ``instruction_source`` (the dataset's name) and ``turns``; the same
columns as the ``dialogues`` config of ``lamini_lm/instructions``, which reads them back.

:func:`clean_dialogue` applies one documented policy to every source: system messages are dropped (LaMini students
see no system message), consecutive turns of the same role are joined with a blank line, leading assistant turns
are dropped, the dialogue is cut before the first empty turn, and a last user turn without an answer is dropped.
A dialogue left with no assistant turn yields no row (the builder logs how many).
"""

from __future__ import annotations

from collections.abc import Iterable

import datasets

__all__ = ["clean_dialogue", "dialogue_source_features"]


def dialogue_source_features() -> datasets.Features:
    string = datasets.Value("string")
    return datasets.Features(
        {
            "id": string,
            "messages": datasets.List({"role": string, "content": string}),
            "instruction_source": string,
            "turns": datasets.Value("int64"),
        }
    )


def clean_dialogue(turns: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """``(role, content)`` pairs (roles already ``user``/``assistant``/``system``) -> alternating messages that start
    with ``user`` and end with ``assistant``; ``[]`` when no exchange is left."""
    out: list[dict[str, str]] = []
    for role, content in turns:
        if role == "system":
            continue
        content = content.strip()
        if not content:
            break
        if not out and role != "user":
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"] += "\n\n" + content
        else:
            out.append({"role": role, "content": content})
    if out and out[-1]["role"] == "user":
        out.pop()
    return out
