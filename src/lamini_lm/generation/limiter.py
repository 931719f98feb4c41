"""Rate limits and retry timing: an RPM/TPM token bucket, exponential backoff with jitter, ``Retry-After``.

Example:
    >>> from lamini_lm.generation.limiter import backoff_delay
    >>> 0 <= backoff_delay(attempt=3, base=1.0, cap=60.0) <= 2.0
    True
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import re
import time
from collections.abc import Mapping

__all__ = ["RateLimiter", "backoff_delay", "parse_context_error", "parse_retry_after"]


class _Bucket:
    """A token bucket refilled at ``per_minute / 60`` per second, holding at most 10 seconds' worth."""

    def __init__(self, per_minute: int):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, per_minute / 6.0)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def wait_time(self, n: float) -> float:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        need = min(n, self.capacity)  # a request larger than the bucket waits for a full bucket, not forever
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, n: float) -> None:
        self.level -= min(n, self.capacity)


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits of one endpoint (0 disables a limit)."""

    def __init__(self, rpm: int = 0, tpm: int = 0):
        self._buckets = [(b, unit) for b, unit in ((_Bucket(rpm), 1), (_Bucket(tpm), 0)) if b.rate > 0]
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: int) -> None:
        if not self._buckets:
            return
        async with self._lock:  # first come, first served
            while True:
                wait = max(b.wait_time(1 if unit else tokens) for b, unit in self._buckets)
                if wait <= 0:
                    for b, unit in self._buckets:
                        b.take(1 if unit else tokens)
                    return
                await asyncio.sleep(wait)


def backoff_delay(attempt: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (1-based).

    ``Retry-After`` if the server gave one: honoured as given (up to 10 minutes) plus at most 10 ms, so retries
    do not align. Otherwise the first retry goes within ``base / 10`` (a lone 500 or a dropped connection is
    usually a one-off, and a retry waiting longer idles slots at the end of a run), then full-jitter exponential
    backoff: uniform in [0, min(cap, base * 2**(attempt-2))].
    """
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, 600.0) + random.uniform(0, 0.01)
    if attempt <= 1:
        return random.uniform(0, min(cap, base / 10))
    return random.uniform(0, min(cap, base * 2 ** (attempt - 2)))


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from ``retry-after-ms``, ``retry-after`` (seconds or an HTTP date), or None."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# OpenAI: "This model's maximum context length is 4097 tokens. However, you requested 4200 tokens (200 in the
# messages, 4000 in the completion)." vLLM: "... maximum context length is 2048 tokens and your request has 100
# input tokens (2000 > 2048 - 100)" or "... maximum context length is 2048 tokens. However, your request has 2100
# input tokens."
_CONTEXT = re.compile(r"maximum context length is (\d+)", re.I)
_PROMPT = [
    re.compile(r"\((\d+) in the messages", re.I),
    re.compile(r"request has (\d+) input tokens", re.I),
    re.compile(r"(\d+) (?:input|prompt) tokens", re.I),
]


def parse_context_error(message: str) -> tuple[int, int | None] | None:
    """(context length, prompt tokens or None) from a context-length error message, or None if it is not one."""
    m = _CONTEXT.search(message or "")
    if not m and "context_length_exceeded" not in (message or ""):
        return None
    limit = int(m.group(1)) if m else 0
    for pattern in _PROMPT:
        p = pattern.search(message)
        if p:
            return limit, int(p.group(1))
    return limit, None
