"""Parse ``<example>...</example>`` instructions out of a sloppy teacher answer, and say what was dropped.

Real answers come with chatter before and after the list, numbered or bulleted items, tags in odd case or with
spaces, an item missing its closing tag, and a last item cut off by the length limit (``finish_reason ==
"length"``). :func:`parse_examples` keeps every complete instruction, drops the truncated last one, and counts
each thing it dropped in a :class:`ParseReport` (reports add up over a run).

Example:
    >>> from lamini_lm.generation import parse_examples
    >>> text = "Sure! Here you go:\\n1. <example>Name a fruit.</example>\\n2. <example>Sum 2 and"
    >>> items, report = parse_examples(text, finish_reason="length")
    >>> items, report.truncated
    (['Name a fruit.'], 1)
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

__all__ = ["ParseReport", "parse_examples"]

_OPEN = re.compile(r"<\s*example\s*>", re.I)
_CLOSE = re.compile(r"<\s*/\s*example\s*>", re.I)
_ANY_TAG = re.compile(r"<\s*/?\s*example\s*>", re.I)
# "1.", "2)", "(3)", "-", "*", "•", "Example 4:", "Instruction:" at the start of an item
_PREFIX = re.compile(r"^\s*(?:\(?\d{1,3}[.):]\s+|[-*•]\s+|(?:example|instruction)\s*\d*\s*[:.-]\s*)", re.I)
_LIST_ITEM = re.compile(r"^\s*(?:\(?\d{1,3}[.)]|[-*•])\s+(\S.*)$")


@dataclass
class ParseReport:
    """What :func:`parse_examples` kept and dropped (add reports with ``+`` to total a run)."""

    kept: int = 0
    truncated: int = 0  # the last item, cut off by the length limit
    empty: int = 0  # tags with nothing (or only numbering) inside
    duplicates: int = 0  # the same instruction twice in one answer
    unclosed: int = 0  # kept although its closing tag was missing
    untagged_answers: int = 0  # answers with no <example> tag, parsed as a numbered/bulleted list
    unparsable_answers: int = 0  # answers with neither tags nor a list: nothing kept
    chatter_lines: int = 0  # non-empty lines outside any example (ignored)

    @property
    def dropped(self) -> int:
        return self.truncated + self.empty + self.duplicates

    def __add__(self, other: ParseReport) -> ParseReport:
        return ParseReport(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))

    def to_dict(self) -> dict[str, int]:
        return {**dataclasses.asdict(self), "dropped": self.dropped}


def _clean(item: str) -> str:
    item = _ANY_TAG.sub(" ", item).strip()
    item = _PREFIX.sub("", item, count=1).strip()
    if len(item) >= 2 and item[0] == item[-1] and item[0] in "\"'`":
        item = item[1:-1].strip()
    if not re.search(r"[^\W\d_]", item):  # only numbering or punctuation left: no instruction
        return ""
    return item


def _count_chatter(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip() and not re.fullmatch(r"\s*\(?\d{1,3}[.):]?\s*", line))


def parse_examples(text: str | None, finish_reason: str | None = None) -> tuple[list[str], ParseReport]:
    """Instructions in ``text`` and a :class:`ParseReport`.

    ``finish_reason == "length"`` means the answer was cut off: its last item is dropped unless it is closed.
    """
    report = ParseReport()
    if not text:
        report.unparsable_answers += 1
        return [], report
    truncated_answer = finish_reason == "length"
    raw: list[str] = []
    opens = list(_OPEN.finditer(text))
    if opens:
        report.chatter_lines += _count_chatter(text[: opens[0].start()])
        for i, m in enumerate(opens):
            end = opens[i + 1].start() if i + 1 < len(opens) else len(text)
            chunk = text[m.end() : end]
            close = _CLOSE.search(chunk)
            if close:
                raw.append(chunk[: close.start()])
                report.chatter_lines += _count_chatter(chunk[close.end() :])
                continue
            last = i + 1 == len(opens)
            if last and truncated_answer:
                report.truncated += 1
                continue
            if last:  # closing tag forgotten at the end: the item runs to the first blank line, chatter follows
                body, _, rest = chunk.partition("\n\n")
                report.chatter_lines += _count_chatter(rest)
                chunk = body
            report.unclosed += 1
            raw.append(chunk)
    else:
        lines = text.splitlines()
        items = [(n, m.group(1)) for n, line in enumerate(lines) if (m := _LIST_ITEM.match(line))]
        if not items:
            report.unparsable_answers += 1
            report.chatter_lines += _count_chatter(text)
            return [], report
        report.untagged_answers += 1
        report.chatter_lines += len([x for x in lines if x.strip()]) - len(items)
        if truncated_answer and items[-1][0] == max(n for n, x in enumerate(lines) if x.strip()):
            report.truncated += 1  # the list ran into the length limit: its last line is incomplete
            items = items[:-1]
        raw = [item for _, item in items]
    seen: set[str] = set()
    kept: list[str] = []
    for item in raw:
        item = _clean(item)
        if not item:
            report.empty += 1
        elif item.casefold() in seen:
            report.duplicates += 1
        else:
            seen.add(item.casefold())
            kept.append(item)
    report.kept = len(kept)
    return kept, report
