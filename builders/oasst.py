"""OpenAssistant conversation trees (oasst1, oasst2): the ``*.trees.jsonl(.gz)`` export, one message tree a line.

A tree is ``{"message_tree_id", "prompt": message}``, a message ``{"message_id", "role": "prompter"|"assistant",
"text", "rank", "deleted", "review_result", "lang", "replies": [message, ...]}``. Each tree is flattened into its
threads (root-to-leaf paths); replies are visited best-ranked first (``rank`` 0 is the best, unranked last), so a
tree's first thread is its best-ranked branch. Deleted messages and messages that failed review are pruned with
their subtree. A thread ends on an assistant message (a last prompter message is dropped).

Which threads to keep (``threads``):

* ``"best"`` (default): one thread per tree, the best-ranked branch at every step. No two rows share a prefix, so
  the first user turn is unique per tree and dedup on it stays meaningful;
* ``"all"``: every distinct thread ending on an assistant message, best-ranked first. More data, but threads of one
  tree repeat their common prefix.

``lang`` keeps only trees whose prompt is in that language (e.g. ``"en"``).

Example:
    >>> from lamini_lm.builders.oasst import OpenAssistant
    >>> builder = OpenAssistant(data_files="2023-04-12_oasst_ready.trees.jsonl.gz", lang="en")  # doctest: +SKIP
    >>> builder.download_and_prepare()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import datasets

from ._base import SourceBuilder
from ._dialogue import clean_dialogue, dialogue_source_features
from ._io import DataFileError, field_value, hub_files, iter_records, open_source

__all__ = ["OASST_REPO", "OpenAssistant", "OpenAssistantConfig", "tree_threads"]

OASST_REPO = "OpenAssistant/oasst1"
_ROLES = {"prompter": "user", "assistant": "assistant"}


@dataclass
class OpenAssistantConfig(datasets.BuilderConfig):
    """Args:
    threads: ``"best"`` (one thread per tree, the best-ranked branch) or ``"all"`` (every thread, best first).
    lang: keep only trees whose prompt has this ``lang`` (None: every language).
    """

    threads: str = "best"
    lang: str | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.threads not in ("best", "all"):
            raise ValueError(f"threads={self.threads!r}: expected 'best' or 'all'")


def _trees(path: str) -> Iterator[tuple[int, dict]]:
    """``(line, tree)`` of a ``.jsonl`` or ``.jsonl.gz`` export (the Hub's copies are gzipped)."""
    if not str(path).lower().endswith(".gz"):
        yield from iter_records(path)
        return
    import gzip
    import json

    with open_source(path, "rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                tree = json.loads(text)
            except json.JSONDecodeError as e:
                raise DataFileError(path, line, None, f"not valid JSON ({e.msg})") from None
            if not isinstance(tree, dict):
                raise DataFileError(path, line, None, f"expected a JSON object, got {type(tree).__name__}")
            yield line, tree


def _rank(message: dict) -> tuple[int, float]:
    rank = message.get("rank")
    return (0, float(rank)) if isinstance(rank, (int, float)) else (1, 0.0)


def _usable(message: dict) -> bool:
    return not message.get("deleted") and message.get("review_result") is not False


def tree_threads(root: dict, threads: str, where: str, line: int) -> list[list[tuple[str, str, str]]]:
    """The threads of a tree as ``(message_id, role, text)`` paths, best-ranked first (``threads="best"``: only
    the first). Raises :class:`DataFileError` naming the message field at fault."""
    out: list[list[tuple[str, str, str]]] = []

    def visit(message: dict, path: list, field: str) -> None:
        if not isinstance(message, dict):
            raise DataFileError(where, line, field, f"expected a message object, got {message!r:.60}")
        role = _ROLES.get(message.get("role"))
        if role is None:
            raise DataFileError(
                where, line, f"{field}.role", f"is {message.get('role')!r}, expected prompter or assistant"
            )
        text = message.get("text")
        if not isinstance(text, str):
            raise DataFileError(where, line, f"{field}.text", f"expected a string, got {text!r:.60}")
        path = [*path, (str(message.get("message_id")), role, text)]
        replies = message.get("replies") or []
        if not isinstance(replies, list):
            raise DataFileError(where, line, f"{field}.replies", f"expected a list, got {replies!r:.60}")
        kids = sorted(
            ((i, r) for i, r in enumerate(replies) if not isinstance(r, dict) or _usable(r)),
            key=lambda ir: _rank(ir[1]) if isinstance(ir[1], dict) else (2, 0.0),
        )
        if not kids:
            out.append(path)
            return
        for i, reply in kids[:1] if threads == "best" else kids:
            visit(reply, path, f"{field}.replies[{i}]")

    if _usable(root):
        visit(root, [], "prompt")
    return out


class OpenAssistant(SourceBuilder):
    """Config ``default`` (``threads="best"``); pass ``threads="all"`` or ``lang="en"`` as builder kwargs."""

    VERSION = datasets.Version("1.0.0")
    CARD = "oasst"
    HOMEPAGE = "https://github.com/LAION-AI/Open-Assistant"
    LICENSE = "apache-2.0"
    BUILDER_CONFIG_CLASS = OpenAssistantConfig
    BUILDER_CONFIGS = [OpenAssistantConfig(name="default", version=VERSION)]

    def _features(self) -> datasets.Features:
        return dialogue_source_features()

    def _default_files(self) -> list[str]:
        return hub_files(OASST_REPO, "*.trees.jsonl.gz")

    def _examples(self, path: str) -> Iterator[dict[str, Any]]:
        seen: set[tuple] = set()
        for line, tree in _trees(path):
            root = field_value(tree, "prompt", path, line, kind=dict)
            if self.config.lang and root.get("lang") != self.config.lang:
                continue
            tree_id = str(tree.get("message_tree_id") or root.get("message_id") or f"{path}:{line}")
            for thread in tree_threads(root, self.config.threads, path, line):
                messages = clean_dialogue((role, text) for _, role, text in thread)
                if not messages:
                    continue
                # a thread cut back to its last assistant turn may equal a shorter one: keep each once
                ids = tuple(mid for mid, _, _ in thread[: len(messages)])
                if ids in seen:
                    continue
                seen.add(ids)
                yield {
                    "id": f"{tree_id}:{ids[-1]}",
                    "messages": messages,
                    "instruction_source": "oasst",
                    "turns": len(messages) // 2,
                }
