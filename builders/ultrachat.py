"""UltraChat-style dialogues (Ding et al., 2023): JSON Lines or parquet rows that are either the original release's
``{"id", "data": [user, assistant, user, ...]}`` (turns alternate, user first) or ``HuggingFaceH4/ultrachat_200k``'s
``{"prompt_id", "messages": [{"role", "content"}, ...]}``. Both are cleaned by
:func:`~lamini_lm.builders._dialogue.clean_dialogue`.

Example:
    >>> from lamini_lm.builders.ultrachat import UltraChat
    >>> builder = UltraChat(data_files="ultrachat.jsonl")  # doctest: +SKIP
    >>> builder.download_and_prepare()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import datasets

from ._base import SourceBuilder
from ._dialogue import clean_dialogue, dialogue_source_features
from ._io import DataFileError, field_value, hub_files, iter_records

__all__ = ["ULTRACHAT_REPO", "UltraChat"]

ULTRACHAT_REPO = "HuggingFaceH4/ultrachat_200k"


class UltraChat(SourceBuilder):
    """One config, ``default``: ``id``, ``messages``, ``instruction_source`` (``"ultrachat"``), ``turns``."""

    VERSION = datasets.Version("1.0.0")
    CARD = "ultrachat"
    HOMEPAGE = "https://github.com/thunlp/UltraChat"
    LICENSE = "mit"
    BUILDER_CONFIGS = [datasets.BuilderConfig(name="default", version=VERSION)]

    def _features(self) -> datasets.Features:
        return dialogue_source_features()

    def _default_files(self) -> list[str]:
        return hub_files(ULTRACHAT_REPO, "data/train_sft-*.parquet")

    def _examples(self, path: str) -> Iterator[dict[str, Any]]:
        for line, row in iter_records(path):
            if "data" in row:
                data = field_value(row, "data", path, line, kind=list)
                turns = []
                for i, text in enumerate(data):
                    if not isinstance(text, str):
                        raise DataFileError(path, line, f"data[{i}]", f"expected a string, got {text!r:.60}")
                    turns.append(("user" if i % 2 == 0 else "assistant", text))
            elif "messages" in row:
                data = field_value(row, "messages", path, line, kind=(list, tuple))
                turns = []
                for i, m in enumerate(data):
                    if not isinstance(m, dict) or not isinstance(m.get("content"), str):
                        raise DataFileError(path, line, f"messages[{i}]", f"expected {{role, content}}, got {m!r:.60}")
                    if m.get("role") not in ("user", "assistant", "system"):
                        raise DataFileError(path, line, f"messages[{i}].role", f"unknown role {m.get('role')!r}")
                    turns.append((m["role"], m["content"]))
            else:
                raise DataFileError(
                    path, line, "data", f"missing: expected 'data' or 'messages' (the row has {sorted(row)})"
                )
            messages = clean_dialogue(turns)
            if not messages:
                continue
            rid = row.get("id", row.get("prompt_id"))
            yield {
                "id": str(rid) if rid is not None else f"{path}:{line}",
                "messages": messages,
                "instruction_source": "ultrachat",
                "turns": len(messages) // 2,
            }
