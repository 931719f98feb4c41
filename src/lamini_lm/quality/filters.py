"""Row filters, each optional and logged: Alpaca/Self-Instruct heuristics and response checks.

Every filter has a name; a row is removed by the first filter that rejects it, and the :class:`StepReport` counts
removals per filter (and per ``instruction_source``) with a few quoted examples.

* ``length``: instruction word count outside ``[min_words, max_words]`` (Self-Instruct: 3 to 150 words).
* ``blacklist``: the instruction names something a text model cannot act on (Self-Instruct's and Alpaca's list:
  image, images, graph, graphs, picture, pictures, file, files, map, maps, draw, plot, go to, video, audio, music,
  flowchart, diagram); matched as whole words, case-insensitive.
* ``leading_punctuation``: the instruction starts with punctuation (Self-Instruct: ``s[0] in string.punctuation``).
* ``non_ascii_start``: the instruction starts with a non-ASCII character (Self-Instruct: ``not s[0].isascii()``).
* ``empty_response`` / ``refusal``: no response text (or only white space), or a refusal ("As an AI language model,
  I cannot ...").
* ``echo``: the response repeats the instruction (same text once normalised).

Example:
    >>> import datasets
    >>> from lamini_lm.quality import filter_rows
    >>> ds = datasets.Dataset.from_dict({
    ...     "instruction": ["Draw a picture of a cat.", "Name three primary colours.", "Say hi to me."],
    ...     "response": ["...", "Red, yellow and blue.", "say hi to me"]})
    >>> kept, report = filter_rows(ds)
    >>> kept["instruction"][:], report.removed
    (['Name three primary colours.'], {'blacklist': 1, 'echo': 1})
"""

from __future__ import annotations

import logging
import re
import string
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from lamini_lm.artifacts import StepReport
from lamini_lm.config import check_range
from lamini_lm.io import column
from lamini_lm.quality.text import normalize

if TYPE_CHECKING:
    import datasets

__all__ = ["BLACKLIST", "REFUSAL_PATTERNS", "FilterConfig", "filter_rows", "reject_reason"]

logger = logging.getLogger(__name__)

BLACKLIST = (
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps", "draw", "plot",
    "go to", "video", "audio", "music", "flowchart", "diagram",
)  # fmt: skip
# A set, not the string: "" (an empty instruction's first character) is in every string but in no set of characters.
_PUNCTUATION = frozenset(string.punctuation)
REFUSAL_PATTERNS = (
    r"\bas an ai(?: language)? model\b",
    r"^i(?:'m| am) sorry,? but i (?:can(?:no|')t|am (?:not able|unable))",
    r"^i (?:can(?:no|')t|am unable to|am not able to) (?:help|assist|provide|fulfil|comply|answer|do that)",
    r"^sorry,? (?:but )?i (?:can(?:no|')t|am unable)",
)


@dataclass
class FilterConfig:
    """Which filters run, and their settings (also the ``lamini-lm filter`` flags)."""

    length: bool = field(default=True, metadata={"help": "drop instructions outside [min_words, max_words]"})
    min_words: int = field(default=3, metadata={"help": "shortest instruction kept, in words (Self-Instruct: 3)"})
    max_words: int = field(default=150, metadata={"help": "longest instruction kept, in words (Self-Instruct: 150)"})
    blacklist: bool = field(default=True, metadata={"help": "drop instructions naming images, files, audio, ..."})
    blacklist_words: list[str] = field(
        default_factory=lambda: list(BLACKLIST),
        metadata={"help": "words/phrases of the blacklist filter (replaces the list; a phrase in quotes)"},
    )
    leading_punctuation: bool = field(default=True, metadata={"help": "drop instructions starting with punctuation"})
    non_ascii_start: bool = field(default=True, metadata={"help": "drop instructions starting with a non-ASCII char"})
    empty_response: bool = field(default=True, metadata={"help": "drop rows with no response text"})
    refusal: bool = field(default=True, metadata={"help": "drop responses that refuse ('As an AI language model')"})
    echo: bool = field(default=True, metadata={"help": "drop rows whose response repeats the instruction"})
    examples: int = field(default=5, metadata={"help": "removed rows quoted per filter in the report"})

    def __post_init__(self):
        if isinstance(self.blacklist_words, str):  # a Python caller's "a,b" or a YAML scalar
            self.blacklist_words = [w for w in self.blacklist_words.split(",")]
        self.blacklist_words = [w.strip() for w in self.blacklist_words if w and w.strip()]
        check_range("min_words", self.min_words, 0)
        check_range("max_words", self.max_words, self.min_words)
        check_range("examples", self.examples, 0)


def _compile(cfg: FilterConfig) -> tuple[re.Pattern, re.Pattern]:
    words = cfg.blacklist_words
    black = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE) if words else None
    refusal = re.compile("|".join(REFUSAL_PATTERNS), re.IGNORECASE)
    return black, refusal


def reject_reason(
    instruction: str, response: str | None, cfg: FilterConfig, patterns: tuple | None = None
) -> str | None:
    """The name of the first filter that rejects this row, or None to keep it."""
    black, refusal = patterns or _compile(cfg)
    text = instruction or ""
    stripped = text.strip()
    if cfg.length and not cfg.min_words <= len(stripped.split()) <= cfg.max_words:
        return "length"
    if cfg.blacklist and black is not None and black.search(text):
        return "blacklist"
    if cfg.leading_punctuation and stripped[:1] in _PUNCTUATION:
        return "leading_punctuation"
    if cfg.non_ascii_start and stripped and not stripped[0].isascii():
        return "non_ascii_start"
    if response is None and not (cfg.empty_response or cfg.refusal or cfg.echo):
        return None
    answer = (response or "").strip()
    if cfg.empty_response and not answer:
        return "empty_response"
    if cfg.refusal and refusal.search(answer):
        return "refusal"
    if cfg.echo and answer and normalize(answer) == normalize(stripped):
        return "echo"
    return None


def filter_rows(
    ds: datasets.Dataset, config: FilterConfig | None = None, **overrides: Any
) -> tuple[datasets.Dataset, StepReport]:
    """Apply the enabled filters to ``ds`` (needs ``instruction``; response filters use ``response`` if present).

    Returns the kept rows and a :class:`StepReport`: ``removed`` (count per filter), ``removed_by_source`` (per
    ``instruction_source``; ``details["removed_by_reason_and_source"]`` splits it by filter), ``examples`` (the
    first removed instructions of each filter; ``details["rows"]`` has them with their responses and row numbers).
    """
    cfg = FilterConfig(**{**asdict(config or FilterConfig()), **overrides})
    start = time.perf_counter()
    instructions = column(ds, "instruction")
    patterns = _compile(cfg)
    has_response = "response" in ds.column_names
    responses = column(ds, "response") if has_response else [None] * len(ds)
    if not has_response:
        cfg = FilterConfig(**{**asdict(cfg), "empty_response": False, "refusal": False, "echo": False})
    sources = column(ds, "instruction_source") if "instruction_source" in ds.column_names else None
    keep: list[int] = []
    removed: Counter = Counter()
    by_source: Counter = Counter()
    by_reason_source: dict[str, Counter] = {}
    rows: dict[str, list] = {}
    for i, (ins, resp) in enumerate(zip(instructions, responses)):
        why = reject_reason(ins, resp, cfg, patterns)
        if why is None:
            keep.append(i)
            continue
        removed[why] += 1
        if sources is not None:
            by_reason_source.setdefault(why, Counter())[sources[i]] += 1
            by_source[sources[i]] += 1
        if len(rows.setdefault(why, [])) < cfg.examples:
            rows[why].append({"row": i, "instruction": ins, "response": resp})
    for why, count in removed.most_common():
        logger.info("filter %s: %d rows removed", why, count)
    report = StepReport(
        step="filters",
        rows_in=len(ds),
        rows_out=len(keep),
        removed=dict(removed),
        removed_by_source=dict(by_source),
        examples={why: [r["instruction"] for r in quoted] for why, quoted in rows.items() if quoted},
        seconds=round(time.perf_counter() - start, 3),
        config=asdict(cfg),
        details={
            "removed_by_reason_and_source": {k: dict(v) for k, v in by_reason_source.items()},
            "rows": {k: v for k, v in rows.items() if v},
        },
    )
    return (ds if len(keep) == len(ds) else ds.select(keep)), report
