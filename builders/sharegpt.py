"""ShareGPT-style dialogues: JSON Lines (or a JSON array) of ``{"id", "conversations": [{"from", "value"}, ...]}``,
the format of the ShareGPT dumps, Vicuna's training data and many chat sets derived from them.

``from`` is mapped to a role: ``human``/``user`` -> ``user``; ``gpt``/``chatgpt``/``assistant``/``bing``/``bard``/
``model`` -> ``assistant``; ``system`` -> dropped. Anything else is an error naming the file, line and field. The
dialogue is then cleaned by :func:`~lamini_lm.builders._dialogue.clean_dialogue`. ShareGPT has no canonical
public copy: give your files with ``data_files=``.

Example:
    >>> from lamini_lm.builders.sharegpt import ShareGPT
    >>> builder = ShareGPT(data_files="sharegpt.jsonl")  # doctest: +SKIP
    >>> builder.download_and_prepare()  # doctest: +SKIP
    >>> builder.as_dataset(split="train")[0]["messages"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import datasets

from ._base import SourceBuilder
from ._dialogue import clean_dialogue, dialogue_source_features
from ._io import DataFileError, field_value, iter_records

__all__ = ["SHAREGPT_ROLES", "ShareGPT"]

logger = logging.getLogger(__name__)

SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "assistant": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "model": "assistant",
    "system": "system",
}


class ShareGPT(SourceBuilder):
    """One config, ``default``: ``id``, ``messages``, ``instruction_source`` (``"sharegpt"``), ``turns``."""

    VERSION = datasets.Version("1.0.0")
    CARD = "sharegpt"
    BUILDER_CONFIGS = [datasets.BuilderConfig(name="default", version=VERSION)]

    def _features(self) -> datasets.Features:
        return dialogue_source_features()

    def _default_files(self) -> list[str]:
        raise ValueError("ShareGPT has no canonical public copy: pass data_files=[your .jsonl/.json files]")

    def _examples(self, path: str) -> Iterator[dict[str, Any]]:
        empty = 0
        for line, row in iter_records(path):
            conversations = field_value(row, "conversations", path, line, kind=list)
            turns = []
            for i, turn in enumerate(conversations):
                if not isinstance(turn, dict):
                    raise DataFileError(
                        path, line, f"conversations[{i}]", f"expected {{from, value}}, got {turn!r:.60}"
                    )
                speaker = field_value(turn, "from", path, line)
                value = field_value(turn, "value", path, line)
                role = SHAREGPT_ROLES.get(speaker.lower())
                if role is None:
                    known = ", ".join(sorted(SHAREGPT_ROLES))
                    raise DataFileError(
                        path, line, f"conversations[{i}].from", f"unknown speaker {speaker!r}; known: {known}"
                    )
                turns.append((role, value))
            messages = clean_dialogue(turns)
            if not messages:
                empty += 1
                continue
            rid = row.get("id")
            yield {
                "id": str(rid) if rid is not None else f"{path}:{line}",
                "messages": messages,
                "instruction_source": "sharegpt",
                "turns": len(messages) // 2,
            }
        if empty:
            logger.info("%s: %d conversations had no user turn answered and were left out", path, empty)
