"""Example-guided and topic-guided instruction generation, and the Wikipedia topic filter (the paper's sections
3.1-3.2).

* **example** strategy: each prompt shows 3 seeds and asks for 20 new instructions (Self-Instruct seeds) or 10
  (P3/FLAN seeds, which are longer; the 3 come from the same subset). Output sources: ``self_instruct_without_
  topic``, ``generated_p3``, ``generated_flan``.
* **topic** strategy: 3 Self-Instruct seeds plus 3 topics from the filtered category list; 20 per prompt;
  source ``self_instruct_with_topic``.

Seeds are a table with an ``instruction`` column and optional ``instruction_source`` (``original_p3`` /
``original_flan`` mark P3/FLAN seeds; anything else or nothing is Self-Instruct), ``subset`` and ``id``.
A seeded RNG makes the prompts, and hence (through the store) the whole run, reproducible.

Sampling shortfalls are counted, never silent (:func:`sampling_report`, in the step's ``details["sampling"]`` and
the manifest, with a one-line warning): prompts that show fewer than ``n_examples`` seeds because their pool (a
P3/FLAN subset, or all the Self-Instruct seeds) is smaller, and P3/FLAN seeds without a ``subset``, which are pooled
together. A pool with fewer than ``min_examples`` seeds (default 2: the paper found 2 examples were needed for
usable instructions, 3 gave a more consistent format) is not drawn from; ``min_examples=3`` is the paper's rule
exactly, ``min_examples=1`` keeps every pool.

Example:
    >>> from lamini_lm.generation import filter_topics
    >>> table = [{"category": "Conidae", "n_subcategories": 12, "n_pages": 900},
    ...          {"category": "People from Springfield, Ohio", "n_subcategories": 40, "n_pages": 300}]
    >>> filter_topics(table)
    ['Conidae']
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lamini_lm.artifacts import StepReport
from lamini_lm.errors import DataError, LaminiError
from lamini_lm.generation.config import TeacherConfig
from lamini_lm.generation.parsing import ParseReport, parse_examples
from lamini_lm.generation.rows import failure_reason, not_sent, rows_to_dataset
from lamini_lm.generation.runner import check_before_sending, keyed_chat_completions
from lamini_lm.io import load_table
from lamini_lm.paper import TOPIC_RULE, TopicRule, is_paper_topic
from lamini_lm.prompts import PROMPT_HASHES, example_guided_prompt, topic_guided_prompt
from lamini_lm.records import InstructionSource

if TYPE_CHECKING:
    import datasets

__all__ = [
    "DEFAULT_MIN_EXAMPLES",
    "PromptPlan",
    "filter_topics",
    "generate_instructions",
    "load_seeds",
    "plan_prompts",
    "sampling_report",
]

logger = logging.getLogger(__name__)

N_PER_PROMPT = {
    "self_instruct": 20,
    "p3": 10,
    "flan": 10,
}  # the paper: 20 per Self-Instruct prompt, 10 per P3/FLAN prompt
GENERATED_SOURCE = {
    "self_instruct": InstructionSource.SELF_INSTRUCT_WITHOUT_TOPIC,
    "p3": InstructionSource.GENERATED_P3,
    "flan": InstructionSource.GENERATED_FLAN,
}
# The paper: "2 examples were needed for usable instructions and 3 gave a more consistent format".
DEFAULT_MIN_EXAMPLES = 2
_ALIASES = {
    "category": ("category", "title", "name", "page_title"),
    "n_subcategories": ("n_subcategories", "subcategories", "subcats", "cat_subcats"),
    "n_pages": ("n_pages", "pages", "cat_pages"),
}


@dataclass(frozen=True)
class Seed:
    id: str
    text: str
    family: str  # "self_instruct", "p3" or "flan"
    subset: str | None


@dataclass(frozen=True)
class PromptPlan:
    """One instruction-generation request: the seeds shown, the topics, how many to ask for."""

    seeds: tuple[Seed, ...]
    topics: tuple[str, ...]
    n: int
    family: str
    strategy: str

    @property
    def prompt(self) -> str:
        examples = [s.text for s in self.seeds]
        if self.strategy == "topic":
            return topic_guided_prompt(examples, self.topics, n=self.n)
        return example_guided_prompt(examples, n=self.n)

    @property
    def source(self) -> InstructionSource:
        if self.strategy == "topic":
            return InstructionSource.SELF_INSTRUCT_WITH_TOPIC
        return GENERATED_SOURCE[self.family]

    @property
    def prompt_version(self) -> str:
        return PROMPT_HASHES["topic_guided" if self.strategy == "topic" else "example_guided"]


def _family(source: Any) -> str:
    s = str(source or "").lower()
    return "p3" if "p3" in s else "flan" if "flan" in s else "self_instruct"


def load_seeds(seeds: Any) -> list[Seed]:
    """Seeds from a path, Dataset, list of dicts or list of strings."""
    if isinstance(seeds, (list, tuple)) and seeds and all(isinstance(s, str) for s in seeds):
        seeds = [{"instruction": s} for s in seeds]
    ds = load_table(seeds, required=["instruction"])
    out = []
    for i, row in enumerate(ds):
        text = row["instruction"]
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"seed row {i}: empty instruction")
        sid = row.get("id")
        out.append(
            Seed(
                str(sid if sid is not None else i),
                text.strip(),
                _family(row.get("instruction_source")),
                row.get("subset"),
            )
        )
    return out


def filter_topics(table: Any, rule: TopicRule = TOPIC_RULE) -> list[str]:
    """Category names passing the paper's filter (:data:`lamini_lm.paper.TOPIC_RULE`: fewer than 3 words, more than
    10 subcategories and more than 50 pages); ``rule`` changes the thresholds.

    ``table``: a path (CSV/TSV/JSONL/parquet/dataset folder), a Dataset, a pandas DataFrame or a list of dicts
    with columns ``category``, ``n_subcategories``, ``n_pages`` (aliases: title/subcategories/pages, as in the
    Wikipedia ``category`` table dump: cat_title/cat_subcats/cat_pages). Underscores read as spaces.
    """
    try:
        import pandas as pd

        if isinstance(table, pd.DataFrame):
            table = table.to_dict("records")
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    ds = load_table(table)
    cols = {}
    for want, names in _ALIASES.items():
        found = next((c for c in ds.column_names if c.lower().removeprefix("cat_") in names or c in names), None)
        if found is None:
            raise ValueError(f"topics table: no {want!r} column (accepted: {names}); found {ds.column_names}")
        cols[want] = found
    kept, seen = [], set()
    for i, row in enumerate(ds.select_columns(list(cols.values()))):
        name = row[cols["category"]]
        try:
            n_sub, n_pages = int(row[cols["n_subcategories"]]), int(row[cols["n_pages"]])
        except (TypeError, ValueError):
            raise ValueError(f"topics table row {i}: counts must be integers, got {row}") from None
        name = re.sub(r"\s+", " ", str(name or "").replace("_", " ")).strip()
        if is_paper_topic(name, n_sub, n_pages, rule):
            if name not in seen:
                seen.add(name)
                kept.append(name)
    logger.info("topic filter kept %d of %d categories", len(kept), len(ds))
    return kept


def _pools(seeds: Sequence[Seed], strategy: str) -> dict[tuple[str, str | None], list[Seed]]:
    """The seed pools a prompt's examples are drawn from: P3/FLAN seeds by subset (so the 3 examples of a prompt
    come from the same one; seeds without a subset are pooled under ``None``), Self-Instruct seeds in one pool."""
    pools: dict[tuple[str, str | None], list[Seed]] = defaultdict(list)
    for s in seeds:
        pools[(s.family, s.subset if s.family != "self_instruct" else None)].append(s)
    if strategy == "topic":
        pools = {k: v for k, v in pools.items() if k[0] == "self_instruct"}
    return pools


def _pool_name(key: tuple[str, str | None]) -> str:
    family, subset = key
    return family if family == "self_instruct" else f"{family}/{subset if subset is not None else '(no subset)'}"


def plan_prompts(
    seeds: Sequence[Seed],
    *,
    strategy: Literal["example", "topic"] = "example",
    topics: Sequence[str] | None = None,
    num_prompts: int = 10,
    n_examples: int = 3,
    n_topics: int = 3,
    n_per_prompt: int | None = None,
    seed: int = 0,
    min_examples: int = DEFAULT_MIN_EXAMPLES,
) -> list[PromptPlan]:
    """The prompts of a run, drawn with ``random.Random(seed)``: same inputs, same prompts.

    Pools with fewer than ``min(min_examples, n_examples)`` seeds are not drawn from (:func:`sampling_report`
    counts them); a smaller pool that is drawn from gives prompts with fewer than ``n_examples`` examples.
    """
    if strategy not in ("example", "topic"):
        raise ValueError(f"strategy must be 'example' or 'topic', got {strategy!r}")
    rng = random.Random(seed)
    pools = _pools(seeds, strategy)
    if strategy == "topic":
        if not pools:
            raise ValueError("topic-guided generation needs Self-Instruct seeds (no instruction_source, or self_*)")
        if not topics:
            raise ValueError("topic-guided generation needs topics (filter_topics on a category table)")
    if not pools:
        raise ValueError("no seeds")
    floor = min(min_examples, n_examples)
    small = {k: len(v) for k, v in pools.items() if len(v) < floor}
    pools = {k: v for k, v in pools.items() if len(v) >= floor}
    if not pools:
        sizes = ", ".join(f"{_pool_name(k)}: {n}" for k, n in sorted(small.items(), key=lambda kv: _pool_name(kv[0])))
        raise ValueError(
            f"no seed pool has --min_examples {floor} seeds ({sizes}); add seeds (P3/FLAN seeds are drawn 3 from "
            "one subset) or lower --min_examples"
        )
    keys = sorted(pools, key=lambda k: (k[0], k[1] or ""))
    weights = [len(pools[k]) for k in keys]
    plans = []
    for _ in range(num_prompts):
        family, subset = rng.choices(keys, weights=weights)[0]
        pool = pools[(family, subset)]
        chosen = tuple(rng.sample(pool, min(n_examples, len(pool))))
        chosen_topics = tuple(rng.sample(list(topics), min(n_topics, len(topics)))) if strategy == "topic" else ()
        n = n_per_prompt or N_PER_PROMPT[family]
        plans.append(PromptPlan(chosen, chosen_topics, n, family, strategy))
    return plans


def sampling_report(
    seeds: Sequence[Seed],
    plans: Sequence[PromptPlan],
    *,
    strategy: str = "example",
    n_examples: int = 3,
    min_examples: int = DEFAULT_MIN_EXAMPLES,
) -> dict[str, Any]:
    """What the sampling of :func:`plan_prompts` fell short of (the paper: 3 seeds, from one subset for P3/FLAN).

    Keys: ``n_examples``, ``min_examples`` (the floor applied: ``min(min_examples, n_examples)``),
    ``short_prompts`` (prompts showing fewer than ``n_examples`` seeds) and ``short_prompts_by_pool``,
    ``seeds_without_subset`` (P3/FLAN seeds with no ``subset``, pooled together) by family, and
    ``pools_below_min_examples`` (pool -> its seeds: never drawn from).
    """
    floor = min(min_examples, n_examples)
    short: dict[str, int] = defaultdict(int)
    for p in plans:
        if len(p.seeds) < n_examples:
            short[_pool_name((p.family, p.seeds[0].subset if p.family != "self_instruct" else None))] += 1
    pools = _pools(seeds, strategy)
    no_subset = {k[0]: len(v) for k, v in pools.items() if k[0] != "self_instruct" and k[1] is None}
    return {
        "n_examples": n_examples,
        "min_examples": floor,
        "short_prompts": sum(short.values()),
        "short_prompts_by_pool": dict(sorted(short.items())),
        "seeds_without_subset": no_subset,
        "pools_below_min_examples": {
            _pool_name(k): len(v) for k, v in sorted(pools.items(), key=lambda kv: _pool_name(kv[0])) if len(v) < floor
        },
    }


def _sampling_warning(report: dict[str, Any]) -> str | None:
    """One line saying what :func:`sampling_report` found, or None when the sampling was the paper's."""
    parts = []
    if report["short_prompts"]:
        pools = ", ".join(report["short_prompts_by_pool"])
        parts.append(f"{report['short_prompts']:,} prompt(s) show fewer than {report['n_examples']} seeds ({pools})")
    if report["seeds_without_subset"]:
        counts = ", ".join(f"{n:,} {family}" for family, n in report["seeds_without_subset"].items())
        parts.append(f"seeds without a subset were pooled together ({counts})")
    if report["pools_below_min_examples"]:
        parts.append(
            f"{len(report['pools_below_min_examples']):,} pool(s) with fewer than --min_examples "
            f"{report['min_examples']} seeds were skipped"
        )
    return "sampling: " + "; ".join(parts) if parts else None


def generate_instructions(
    seeds: Any,
    *,
    strategy: Literal["example", "topic"] = "example",
    topics: Any = None,
    config: TeacherConfig | Sequence[TeacherConfig],
    store: str | os.PathLike,
    num_prompts: int = 10,
    n_examples: int = 3,
    n_topics: int = 3,
    n_per_prompt: int | None = None,
    seed: int = 0,
    min_examples: int = DEFAULT_MIN_EXAMPLES,
    filter_topic_table: bool = True,
    dry_run: bool = False,
    return_report: bool = False,
) -> datasets.Dataset | tuple[datasets.Dataset, StepReport]:
    """Ask the teacher for new instructions; one row per generated instruction (schema: ``generation_features``).

    ``topics``: a category table (filtered with :func:`filter_topics` unless ``filter_topic_table=False``) or a
    list of topic strings. A prompt whose request failed gives one row with ``instruction=None`` and ``error``.
    Token usage and cost of a request sit on the first row it produced (sums over the dataset are right).
    ``return_report=True`` returns ``(dataset, StepReport)``: step ``"parse_instructions"``, rows in = instructions
    asked for, rows out = instructions parsed, removed by reason (``request_failed``, ``truncated``, ``empty``,
    ``duplicate``, ``not_returned``), the parser's counts in ``details``, the sampling's shortfalls in
    ``details["sampling"]`` (:func:`sampling_report`; a one-line warning is logged when there are any).
    ``min_examples``: pools with fewer seeds are not drawn from (see :func:`plan_prompts`).

    Everything that can fail is checked before the first request: seeds, topics, the prompts, credentials and a
    budget too small for one request (:func:`~lamini_lm.generation.runner.check_before_sending`).

    Example:
        >>> cfg = TeacherConfig(base_url="http://127.0.0.1:8000/v1", model="my-model")
        >>> seeds = ["Name a fruit.", "Add 2 and 3.", "Tell a joke."]
        >>> ds, report = generate_instructions(
        ...     seeds, config=cfg, store="teacher.sqlite", num_prompts=5, return_report=True
        ... )  # doctest: +SKIP
        >>> print(report.summary())  # doctest: +SKIP
    """
    start = time.monotonic()
    try:
        pool = load_seeds(seeds)
        topic_list: list[str] | None = None
        if strategy == "topic":
            if topics is None:
                raise ValueError("strategy 'topic' needs topics (--topics: a category table or a list of topics)")
            if isinstance(topics, (list, tuple)) and all(isinstance(t, str) for t in topics):
                topic_list = list(topics)
            elif filter_topic_table:
                topic_list = filter_topics(topics)
            else:
                topic_list = [str(r) for r in load_table(topics, required=["category"])["category"]]
            if not topic_list:
                raise ValueError("no topic passed the filter (fewer than 3 words, >10 subcategories, >50 pages)")
        plans = plan_prompts(
            pool,
            strategy=strategy,
            topics=topic_list,
            num_prompts=num_prompts,
            n_examples=n_examples,
            n_topics=n_topics,
            n_per_prompt=n_per_prompt,
            seed=seed,
            min_examples=min_examples,
        )
    except ValueError as e:
        if isinstance(e, LaminiError):
            raise
        raise DataError(str(e)) from None
    sampling = sampling_report(pool, plans, strategy=strategy, n_examples=n_examples, min_examples=min_examples)
    warning = _sampling_warning(sampling)
    if warning:
        logger.warning("%s", warning)
    messages = [[{"role": "user", "content": p.prompt}] for p in plans]
    version = plans[0].prompt_version if plans else None
    planned = None if dry_run else check_before_sending(messages, config, store, prompt_version=version)
    keys, responses = keyed_chat_completions(
        messages, config, store, desc=f"instructions ({strategy})", dry_run=dry_run, prompt_version=version
    )
    model = (config if isinstance(config, TeacherConfig) else config[0]).model
    rows, total = [], ParseReport()
    removed: dict[str, int] = defaultdict(int)
    examples: dict[str, list[str]] = defaultdict(list)
    failures: dict[str, int] = defaultdict(int)
    failed = unsent = extra = 0
    for plan, response, key in zip(plans, responses, keys):
        base = {
            "instruction_source": plan.source.value,
            "seed_ids": [s.id for s in plan.seeds],
            "topics": list(plan.topics),
            "subset": plan.seeds[0].subset if plan.family != "self_instruct" else None,
            "instruction_prompt_version": plan.prompt_version,
            "instruction_model": response.model or model,
            "finish_reason": response.finish_reason,
            "request_key": key,
        }
        usage = {
            "prompt_tokens": response.usage.prompt_tokens,
            "completion_tokens": response.usage.completion_tokens,
            "cost_usd": response.cost_usd,
        }
        if not response.ok:
            rows.append({**base, **usage, "instruction": None, "error": response.error})
            reason = "not_sent" if not_sent(response.error) else "request_failed"
            removed[reason] += plan.n
            unsent += reason == "not_sent"
            failed += reason == "request_failed"
            _example(examples, failure_reason(response.error), response.error)
            if reason == "request_failed":
                failures[failure_reason(response.error)] += 1
            continue
        items, report = parse_examples(response.text, response.finish_reason)
        total += report
        for reason, n in (("truncated", report.truncated), ("empty", report.empty), ("duplicate", report.duplicates)):
            removed[reason] += n
        short = plan.n - report.kept - report.dropped
        removed["not_returned"] += max(short, 0)
        extra += max(-short, 0)
        if not items:
            failed += 1
            error = "no instruction could be parsed"
            rows.append({**base, **usage, "instruction": None, "error": error})
            _example(examples, error, (response.text or "")[:200])
            failures[error] += 1
        for j, item in enumerate(items):
            rows.append({**base, **(usage if j == 0 else {}), "instruction": item, "error": None})
    details = {
        "strategy": strategy,
        "requests": len(plans),
        "asked": len(plans),
        "failed": failed,
        "failures": dict(failures),
        "not_sent": unsent,
        "more_than_asked": extra,
        **({"to_send": planned.requests, "from_cache": planned.cached} if planned is not None else {}),
        "parse": total.to_dict(),
        "sampling": sampling,
    }
    step = StepReport(
        step="parse_instructions",
        rows_in=sum(p.n for p in plans),
        rows_out=total.kept,
        removed={k: v for k, v in removed.items() if v},
        examples=dict(examples),
        seconds=round(time.monotonic() - start, 3),
        config={
            "num_prompts": num_prompts,
            "n_examples": n_examples,
            "min_examples": min_examples,
            "n_topics": n_topics,
            "seed": seed,
        },
        details=details,
    )
    logger.info("%s", step.summary())
    ds = rows_to_dataset(rows)
    return (ds, step) if return_report else ds


def _example(examples: dict[str, list[str]], reason: str, text: str, keep: int = 3) -> None:
    if len(examples[reason]) < keep:
        examples[reason].append(text)
