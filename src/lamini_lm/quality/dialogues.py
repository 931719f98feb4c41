"""The quality steps for dialogues (rows with a ``messages`` column): what each step looks at in a dialogue.

* dedup: on the **first user turn** (the seed instruction; later turns depend on it), with the usual exact and
  MinHash + ROUGE-L passes (:func:`lamini_lm.quality.dedup.dedup`);
* decontamination: on **every turn** of either role, each turn scanned on its own (no n-gram spans two turns); a
  dialogue with any flagged turn is removed (or tagged);
* filters: **per exchange** (a user turn and its answer, :func:`lamini_lm.quality.filters.reject_reason`); a dialogue
  is cut before its first rejected exchange, and removed when that is the first one;
* statistics: turns per dialogue and words per turn by role, with a plot.

``lamini-lm dedup|filter|decontaminate|stats`` use these when their input has a ``messages`` column.

Example:
    >>> from lamini_lm.quality.dialogues import dialogue_stats, filter_dialogues
    >>> kept, report = filter_dialogues(ds)  # doctest: +SKIP
    >>> dialogue_stats(kept)["turns"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from lamini_lm.artifacts import StepReport

if TYPE_CHECKING:
    import datasets

    from lamini_lm.quality.dedup import DedupConfig
    from lamini_lm.quality.filters import FilterConfig

__all__ = [
    "decontaminate_dialogues",
    "dedup_dialogues",
    "dialogue_stats",
    "dialogue_view",
    "filter_dialogues",
    "is_dialogue",
]

logger = logging.getLogger(__name__)


def is_dialogue(ds: datasets.Dataset) -> bool:
    """Whether ``ds`` holds dialogues (a ``messages`` column)."""
    return "messages" in ds.column_names


def dialogue_view(ds: datasets.Dataset) -> datasets.Dataset:
    """``ds`` with ``instruction`` (first user turn) and ``response`` (first answer) filled from ``messages`` when
    it lacks them (rows of the ShareGPT/UltraChat/OpenAssistant builders), so the single-turn steps can read it."""
    missing = [c for c in ("instruction", "response") if c not in ds.column_names]
    if not missing:
        return ds
    messages = ds["messages"]
    for name, index in (("instruction", 0), ("response", 1)):
        if name in missing:
            ds = ds.add_column(name, [m[index]["content"] if len(m) > index else None for m in messages])
    return ds


def dedup_dialogues(
    ds: datasets.Dataset, config: DedupConfig | None = None, **overrides: Any
) -> tuple[datasets.Dataset, StepReport]:
    """Deduplicate dialogues on their first user turn (``config.column`` is ignored: it is always that turn)."""
    from lamini_lm.quality.dedup import DedupConfig, dedup

    cfg = DedupConfig(**{**asdict(config or DedupConfig()), **overrides, "column": "_first_user_turn"})
    firsts = [m[0]["content"] if m else "" for m in ds["messages"]]
    out, report = dedup(ds.add_column("_first_user_turn", firsts), cfg)
    report.details["dialogues"] = "deduplicated on the first user turn"
    return out.remove_columns("_first_user_turn"), report


def filter_dialogues(
    ds: datasets.Dataset, config: FilterConfig | None = None, **overrides: Any
) -> tuple[datasets.Dataset, StepReport]:
    """Apply the filters to every exchange; cut each dialogue before its first rejected exchange.

    ``removed`` counts dialogues whose first exchange was rejected, by filter; ``details["cut"]`` counts dialogues
    shortened, by the filter that cut them, and ``details["turns_removed"]`` the assistant turns dropped.
    """
    from lamini_lm.quality.filters import FilterConfig, _compile, reject_reason

    cfg = FilterConfig(**{**asdict(config or FilterConfig()), **overrides})
    start = time.perf_counter()
    patterns = _compile(cfg)
    keep: list[int] = []
    new_messages: list[list[dict[str, str]]] = []
    removed: Counter = Counter()
    cut: Counter = Counter()
    examples: dict[str, list[str]] = {}
    turns_removed = 0
    for i, messages in enumerate(ds["messages"]):
        kept = len(messages)
        why = None
        for t in range(0, len(messages) - 1, 2):
            why = reject_reason(messages[t]["content"], messages[t + 1]["content"], cfg, patterns)
            if why is not None:
                kept = t
                break
        turns_removed += (len(messages) - kept) // 2
        if why is not None and len(examples.setdefault(why, [])) < cfg.examples:
            examples[why].append(messages[kept]["content"])
        if kept == 0:
            removed[why] += 1
            continue
        if why is not None:
            cut[why] += 1
        keep.append(i)
        new_messages.append(messages[:kept])
    out = ds.select(keep)
    if cut:
        turns = [len(m) // 2 for m in new_messages]
        out = out.remove_columns("messages").add_column("messages", new_messages, feature=ds.features["messages"])
        if "turns" in out.column_names:
            out = out.remove_columns("turns").add_column("turns", turns, feature=ds.features["turns"])
    report = StepReport(
        step="filters",
        rows_in=len(ds),
        rows_out=len(out),
        removed=dict(removed),
        examples={k: v for k, v in examples.items() if v},
        seconds=round(time.perf_counter() - start, 3),
        config=asdict(cfg),
        details={"dialogues": "filtered per exchange", "cut": dict(cut), "turns_removed": turns_removed},
    )
    return out, report


def decontaminate_dialogues(
    ds: datasets.Dataset,
    eval_sets=None,
    *,
    tasks=None,
    ngram: int = 13,
    action: str = "remove",
    examples: int = 5,
) -> tuple[datasets.Dataset, StepReport]:
    """Flag dialogues any of whose turns shares an ``ngram``-gram with an evaluation set; remove or tag them.

    Each turn is scanned on its own (through :func:`lamini_lm.quality.decontaminate.decontaminate` on a table of
    turns), so no n-gram spans two turns. The report counts dialogues; ``details["flagged_turns"]`` counts turns.
    """
    import datasets

    from lamini_lm.quality.decontaminate import decontaminate

    owner, roles, texts = [], [], []
    for i, messages in enumerate(ds["messages"]):
        for m in messages:
            owner.append(i)
            roles.append(m["role"])
            texts.append(m["content"])
    turns = datasets.Dataset.from_dict({"turn": texts, "role": roles})
    tagged, turn_report = decontaminate(
        turns, eval_sets, tasks=tasks, ngram=ngram, columns=["turn"], action="tag", examples=examples
    )
    flagged: dict[int, set[str]] = {}
    by_role: Counter = Counter()
    for i, role, names in zip(owner, roles, tagged["contaminated"]):
        if names:
            flagged.setdefault(i, set()).update(names)
            by_role[role] += 1
    if action == "tag":
        out = ds.add_column("contaminated", [sorted(flagged.get(i, ())) for i in range(len(ds))])
    else:
        out = ds.select([i for i in range(len(ds)) if i not in flagged])
    details = dict(turn_report.details)
    details.update(
        flagged=len(flagged), flagged_turns=sum(by_role.values()), flagged_turns_by_role=dict(by_role),
        dialogues="every turn checked",
    )  # fmt: skip
    report = StepReport(
        step="decontamination",
        rows_in=len(ds),
        rows_out=len(out),
        removed={"contaminated": len(flagged)} if action == "remove" else {},
        examples=turn_report.examples,
        seconds=turn_report.seconds,
        config={**turn_report.config, "columns": ["messages"], "action": action},
        details=details,
    )
    return out, report


def dialogue_stats(ds: datasets.Dataset, out_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Turns per dialogue (histogram) and words per turn by role (mean, median, p95); with ``out_dir``, the plot
    ``dialogue_turns.png`` (turns per dialogue, and words per turn by role)."""
    messages = ds["messages"]
    turns = np.array([sum(m["role"] == "assistant" for m in msgs) for msgs in messages], dtype=np.int64)
    words = {r: np.array([len(m["content"].split()) for msgs in messages for m in msgs if m["role"] == r]) for r in
             ("user", "assistant")}  # fmt: skip

    def summary(x: np.ndarray) -> dict[str, float]:
        if not len(x):
            return {}
        return {"mean": round(float(x.mean()), 2), "median": float(np.median(x)), "p95": float(np.percentile(x, 95))}

    stats: dict[str, Any] = {
        "dialogues": len(ds),
        "turns": {str(k): v for k, v in sorted(Counter(turns.tolist()).items())},
        "turns_summary": summary(turns),
        "words_per_turn": {r: summary(x) for r, x in words.items()},
        "plots": {},
    }
    if "complete" in ds.column_names:
        stats["complete"] = int(sum(ds["complete"]))
    if "end_reason" in ds.column_names:
        stats["end_reasons"] = dict(Counter(ds["end_reason"]))
    if out_dir is None or not len(ds):
        return stats
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    values = sorted(Counter(turns.tolist()).items())
    a.bar([k for k, _ in values], [v for _, v in values], color="tab:blue")
    a.set_xlabel("assistant turns")
    a.set_ylabel("dialogues")
    a.set_title("Turns per dialogue")
    for role, color in (("user", "tab:orange"), ("assistant", "tab:green")):
        if len(words[role]):
            b.hist(words[role], bins=30, alpha=0.6, label=role, color=color)
    b.set_xlabel("words per turn")
    b.set_title("Words per turn")
    b.legend()
    fig.tight_layout()
    path = os.path.join(out_dir, "dialogue_turns.png")
    fig.savefig(path + ".tmp.png", dpi=110)
    plt.close(fig)
    os.replace(path + ".tmp.png", path)
    stats["plots"]["dialogue_turns"] = "dialogue_turns.png"
    return stats
