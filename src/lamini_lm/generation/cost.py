"""Prices, token estimates and the ``--dry-run`` estimate.

Prices are USD per 1M tokens (input, output) for common OpenAI chat models, as listed on openai.com/api/pricing;
they change, so override them with ``TeacherConfig.prices`` (a YAML/JSON file of ``model: [in, out]`` or the
string ``"model=in,out;model2=in,out"``). A model missing from the table costs 0 (a local server) and is logged
once. The Batch API is billed at half price.

Example:
    >>> from lamini_lm.generation.cost import price_table, cost_usd
    >>> table = price_table("my-model=1.0,2.0")
    >>> cost_usd(table, "my-model", prompt_tokens=1_000_000, completion_tokens=500_000)
    2.0
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_PRICES",
    "Estimate",
    "cost_usd",
    "estimate_tokens",
    "lookup_price",
    "max_prompt_tokens",
    "price_table",
]

logger = logging.getLogger(__name__)

# USD per 1M tokens: (input, output). Standard (non-batch) tier.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-3.5-turbo-0125": (0.50, 1.50),
    "gpt-3.5-turbo-1106": (1.00, 2.00),
    "gpt-3.5-turbo-instruct": (1.50, 2.00),
    "gpt-4": (30.00, 60.00),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
}
BATCH_DISCOUNT = 0.5
_warned: set[str] = set()


def price_table(overrides: str | os.PathLike | Mapping[str, Sequence[float]] | None = None) -> dict:
    """The default table updated with ``overrides`` (a mapping, a YAML/JSON file, or ``"m=in,out;m2=in,out"``)."""
    table = dict(DEFAULT_PRICES)
    if overrides is None:
        return table
    if isinstance(overrides, Mapping):
        items = overrides
    elif os.path.exists(overrides):
        import yaml  # YAML is a superset of JSON

        with open(overrides, encoding="utf-8") as f:
            items = yaml.safe_load(f) or {}
        if not isinstance(items, Mapping):
            raise ValueError(f"{overrides}: expected a mapping of model: [input_usd_per_1m, output_usd_per_1m]")
    else:
        items = {}
        for part in str(overrides).split(";"):
            if not part.strip():
                continue
            model, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"price override {part!r}: expected 'model=input,output' (USD per 1M tokens)")
            items[model.strip()] = [float(v) for v in value.split(",")]
    for model, value in items.items():
        value = list(value) if not isinstance(value, Mapping) else [value["input"], value["output"]]
        if len(value) != 2:
            raise ValueError(f"price of {model!r}: expected [input, output] USD per 1M tokens, got {value}")
        table[str(model)] = (float(value[0]), float(value[1]))
    return table


def lookup_price(table: Mapping[str, tuple[float, float]], model: str) -> tuple[float, float]:
    """Price of ``model``; dated snapshots (``gpt-4o-2024-08-06``) fall back to their family's price."""
    if model in table:
        return table[model]
    best = max((m for m in table if model.startswith(m + "-")), key=len, default=None)
    if best is not None:
        return table[best]
    if model not in _warned:
        _warned.add(model)
        logger.info("no price for model %r: counting it as free (set TeacherConfig.prices to change)", model)
    return (0.0, 0.0)


def cost_usd(
    table: Mapping[str, tuple[float, float]],
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    batch: bool = False,
) -> float:
    p_in, p_out = lookup_price(table, model)
    cost = (prompt_tokens * p_in + completion_tokens * p_out) / 1e6
    return cost * BATCH_DISCOUNT if batch else cost


def estimate_tokens(messages: Sequence[Mapping[str, str]]) -> int:
    """Prompt tokens of a chat request, estimated at 4 characters a token plus the chat format's overhead.

    Good to about 10-20% for English; only the dry-run estimate, the budget reservation and the TPM limiter use
    it. The API's own ``usage`` is what rows record.
    """
    chars = sum(len(m.get("content") or "") for m in messages)
    return chars // 4 + 4 * len(messages) + 3


def max_prompt_tokens(messages: Sequence[Mapping[str, str]]) -> int:
    """A generous upper bound of a request's prompt tokens (one per character plus the format's overhead).

    The budget reserves this, not the 4-characters estimate, so that a run stops *before* exceeding it.
    """
    return sum(len(m.get("content") or "") for m in messages) + 8 * len(messages) + 16


@dataclass
class Estimate:
    """What a run would send: printed by ``--dry-run``."""

    requests: int
    cached: int
    prompt_tokens: int
    completion_tokens_max: int
    completion_tokens_expected: int
    cost_usd_expected: float
    cost_usd_max: float
    model: str
    expected_from: str

    def __str__(self) -> str:
        return (
            f"dry run for {self.model}: {self.requests:,} requests to send ({self.cached:,} already in the store); "
            f"~{self.prompt_tokens:,} prompt tokens, ~{self.completion_tokens_expected:,} completion tokens expected "
            f"({self.expected_from}; at most {self.completion_tokens_max:,}); "
            f"expected cost ${self.cost_usd_expected:,.4f} (at most ${self.cost_usd_max:,.4f})"
        )

    def to_json(self) -> str:
        from dataclasses import asdict

        return json.dumps(asdict(self))
