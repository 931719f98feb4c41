"""``chat_completions``: many chat requests, cached, resumable, rate-limited, retried and costed.

How a run works: requests whose key is in the store are answered from it. The others go to a shared work queue
drained by ``concurrency`` workers per endpoint (so a faster endpoint takes more work). A worker makes one
attempt; on a retryable failure it schedules the retry for later (``Retry-After`` or exponential backoff with
jitter) and takes the next request at once: a request waiting on a backoff never holds a slot, so the endpoint is
never idled by a sleeping retry. Retries jump the queue, so a run does not end on a long tail. Every answer is
committed to the store as it arrives. A run first claims its missing keys in the store: keys another live process
on the same store is answering are waited for, not sent again.

Example:
    >>> from lamini_lm.generation import TeacherConfig, chat_completions
    >>> cfg = TeacherConfig(base_url="http://127.0.0.1:8000/v1", model="my-model", max_tokens=64)
    >>> msgs = [[{"role": "user", "content": f"Say {i}."}] for i in range(100)]
    >>> answers = chat_completions(msgs, cfg, "teacher.sqlite")  # doctest: +SKIP
    >>> [a.text if a.ok else a.error for a in answers][:2]  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Coroutine, Sequence
from typing import Any

from lamini_lm.generation.config import TeacherConfig, as_endpoints
from lamini_lm.generation.cost import Estimate, cost_usd, estimate_tokens, max_prompt_tokens, price_table
from lamini_lm.generation.limiter import backoff_delay
from lamini_lm.generation.store import Store, request_key
from lamini_lm.records import Response, Usage

__all__ = [
    "achat_completions",
    "chat_completions",
    "check_before_sending",
    "estimate",
    "keyed_chat_completions",
    "request_keys",
    "run_sync",
]

logger = logging.getLogger(__name__)

Messages = list[dict[str, str]]


@dataclasses.dataclass
class _Job:
    key: str
    messages: Messages
    max_tokens: int
    est_prompt: int
    max_prompt: int  # upper bound, reserved against the budget
    attempt: int = 0


class _Progress:
    """tqdm bar with done/total, req/s and ETA (tqdm's own), tokens, $ spent, failures and retries."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="req", disable=not enabled, dynamic_ncols=True)
        self.tokens = self.failed = self.retries = 0
        self.spent = 0.0
        self._last = 0.0

    def update(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last > 0.5:  # refreshing the postfix on every answer would cost CPU
            self._last = now
            self.bar.set_postfix_str(
                f"tok={self.tokens:,} ${self.spent:,.4f} fail={self.failed} retry={self.retries}", refresh=False
            )

    def close(self) -> None:
        self.update(force=True)
        self.bar.close()


class _Run:
    """The real-time requests of one call. Budget, spending, clients and rate limits last for the whole call, across
    the rounds of :func:`_answer_missing` (a key taken over from another process must not get a fresh budget)."""

    def __init__(self, endpoints: list[TeacherConfig], store: Store, progress: _Progress):
        self.configs = endpoints
        self.store = store
        self.progress = progress
        primary = endpoints[0]
        self.prices = price_table(primary.prices)
        self.budget = primary.budget_usd
        self.spent = self.reserved = 0.0
        self.stop_reason: str | None = None
        self.endpoints: list = []  # clients, made on the first round (inside the event loop)

    async def run(self, jobs: list[_Job]) -> dict[str, Response]:
        """Answer ``jobs`` (one round); returns their responses by key."""
        from lamini_lm.generation.client import Endpoint

        self.fresh = deque(jobs)
        self.ready: deque[_Job] = deque()  # retries whose wait is over: served first
        self.outstanding = len(jobs)
        self.results: dict[str, Response] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self.wake = asyncio.Event()
        if not self.endpoints:
            self.endpoints = [Endpoint(c) for c in self.configs]
        workers = [
            asyncio.ensure_future(self._worker(ep)) for ep in self.endpoints for _ in range(ep.config.concurrency)
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            for t in self._timers:
                t.cancel()
        return self.results

    async def aclose(self) -> None:
        for ep in self.endpoints:
            await ep.aclose()

    async def _next(self) -> _Job | None:
        while True:
            if self.ready:
                return self.ready.popleft()
            if self.fresh:
                return self.fresh.popleft()
            if self.outstanding == 0:
                return None
            self.wake.clear()
            await self.wake.wait()

    def _requeue(self, job: _Job, timer: asyncio.TimerHandle | None = None, front: bool = False) -> None:
        self._timers.discard(timer)
        if front:
            self.ready.appendleft(job)
        else:
            self.ready.append(job)
        self.wake.set()

    def _schedule(self, job: _Job, delay: float) -> None:
        loop = asyncio.get_running_loop()
        holder: list[asyncio.TimerHandle] = []
        timer = loop.call_later(delay, lambda: self._requeue(job, holder[0]))
        holder.append(timer)
        self._timers.add(timer)

    def _finish(self, job: _Job, response: Response, persist: bool) -> None:
        if persist:
            self.store.put(job.key, response)
        self.results[job.key] = response
        self.outstanding -= 1
        p = self.progress
        p.tokens += response.usage.total_tokens
        p.spent = self.spent
        p.failed += not response.ok
        p.bar.update(1)
        p.update()
        if self.outstanding == 0:
            self.wake.set()

    def _reserve(self, job: _Job, model: str) -> float | None:
        """Worst-case cost of ``job``, reserved against the budget; None if it would exceed the budget."""
        if self.budget is None:
            return 0.0
        worst = cost_usd(self.prices, model, job.max_prompt, job.max_tokens, batch=False)
        if self.spent + self.reserved + worst > self.budget:
            if self.stop_reason is None:
                logger.warning("budget $%.4f reached ($%.4f spent): sending no more requests", self.budget, self.spent)
            self.stop_reason = (
                f"budget of ${self.budget:.4f} reached before this request was sent; re-run with a larger budget"
            )
            return None
        self.reserved += worst
        return worst

    async def _worker(self, ep) -> None:
        cfg: TeacherConfig = ep.config
        while (job := await self._next()) is not None:
            # stopped (budget, bad key) before this job, or its worst case would pass the budget: not sent
            if self.stop_reason is not None or (reserved := self._reserve(job, cfg.model)) is None:
                self._finish(job, Response(None, error=self.stop_reason), persist=False)
                continue
            try:
                await ep.limiter.acquire(job.est_prompt + job.max_tokens)
                attempt = await ep.complete(job.messages, job.max_tokens)
            finally:
                self.reserved -= reserved
            if attempt.response is not None:
                self._answer(job, attempt.response, cfg)
            elif attempt.fatal:  # a bad key or an empty account: stop instead of failing every row one by one
                if self.stop_reason is None:
                    logger.error("%s: %s; sending no more requests", ep.name, attempt.error)
                    self.stop_reason = f"run stopped: {attempt.error}"
                self._finish(job, Response(None, error=attempt.error), persist=False)
            elif attempt.context is not None:
                self._shrink_or_fail(job, attempt, cfg)
            elif attempt.retryable and job.attempt < cfg.max_retries:
                job.attempt += 1
                self.progress.retries += 1
                logger.debug("retry %d of %s in a while: %s", job.attempt, job.key[:12], attempt.error)
                self._schedule(job, backoff_delay(job.attempt, cfg.backoff_base, cfg.backoff_max, attempt.retry_after))
            else:
                # exhausted transient failures are not stored: a re-run tries them again
                tries = f" after {job.attempt + 1} attempts" if attempt.retryable else ""
                self._finish(job, Response(None, error=f"{attempt.error}{tries}"), persist=not attempt.retryable)

    def _answer(self, job: _Job, r: Response, cfg: TeacherConfig) -> None:
        usage = r.usage
        if usage.total_tokens == 0:  # servers that report no usage: estimate, so cost and budget still hold
            usage = Usage(job.est_prompt, len(r.text or "") // 4 + 1)
        cost = cost_usd(self.prices, cfg.model, usage.prompt_tokens, usage.completion_tokens)
        self.spent += cost
        self._finish(job, dataclasses.replace(r, usage=usage, cost_usd=cost), persist=True)

    def _shrink_or_fail(self, job: _Job, attempt, cfg: TeacherConfig) -> None:
        limit, prompt = attempt.context
        new = limit - prompt - 1 if (limit and prompt is not None) else job.max_tokens // 2
        if cfg.min_max_tokens <= new < job.max_tokens:
            logger.info("request %s too long for the context: max_tokens %d -> %d", job.key[:12], job.max_tokens, new)
            job.max_tokens = new
            self._requeue(job, front=True)
        else:
            self._finish(job, Response(None, error=attempt.error), persist=True)


CLAIM_POLL_SECONDS = 1.0  # how often a run looks for the answers another process is fetching


async def _answer_missing(
    endpoints: list[TeacherConfig], st: Store, todo: dict[str, Messages], progress: _Progress
) -> dict[str, Response]:
    """Send the keys this run claims; wait for those another live process on the same store is answering (and
    take them over if it dies), so that no request is paid twice."""
    primary = endpoints[0]
    realtime = None if primary.batch_api else _Run(endpoints, st, progress)
    results: dict[str, Response] = {}
    pending = dict(todo)
    told = False
    try:
        while pending:
            mine = st.claim(pending)
            if mine:
                batch = {k: pending.pop(k) for k in list(pending) if k in mine}
                if realtime is None:
                    from lamini_lm.generation.batch import run_batches

                    results.update(await run_batches(endpoints, st, batch, progress))
                else:
                    jobs = [
                        _Job(k, m, primary.max_tokens, estimate_tokens(m), max_prompt_tokens(m))
                        for k, m in batch.items()
                    ]
                    results.update(await realtime.run(jobs))
            if not pending:
                break
            if not told:
                owners = sorted(set(st.claimed_by_others(pending).values()))
                logger.warning(
                    "%d requests are being answered by another process on %s (%s): waiting for its answers",
                    len(pending),
                    st.path,
                    ", ".join(owners) or "just finished",
                )
                told = True
            await asyncio.sleep(CLAIM_POLL_SECONDS)
            found = st.get_many(pending)
            for k, r in found.items():
                results[k] = r
                del pending[k]
            progress.bar.update(len(found))
    finally:
        if realtime is not None:
            await realtime.aclose()
    return results


def _prepare(messages_list, config, prompt_version):
    endpoints = as_endpoints(config)
    primary = endpoints[0]
    sampling = primary.sampling()
    keys = []
    for i, messages in enumerate(messages_list):
        if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m for m in messages):
            raise TypeError(f"messages_list[{i}] must be a list of {{'role': ..., 'content': ...}} dicts")
        keys.append(request_key(primary.model, messages, sampling, prompt_version))
    return endpoints, keys


def request_keys(
    messages_list: Sequence[Messages],
    config: TeacherConfig | Sequence[TeacherConfig],
    prompt_version: str | None = None,
) -> list[str]:
    """The store keys of ``messages_list`` under ``config`` (what rows record as ``request_key``)."""
    return _prepare(messages_list, config, prompt_version)[1]


def estimate(
    messages_list: Sequence[Messages],
    config: TeacherConfig | Sequence[TeacherConfig],
    store: str | os.PathLike,
    *,
    prompt_version: str | None = None,
) -> Estimate:
    """What :func:`chat_completions` would send and cost, without sending anything."""
    endpoints, keys = _prepare(messages_list, config, prompt_version)
    with Store(store) as st:
        cached = st.get_many(keys)
    return _estimate(endpoints[0], keys, messages_list, cached)


def check_reachable(base_url: str, timeout: float = 3.0) -> None:
    """Fail in seconds, with one line, when nothing answers at ``base_url`` (a TCP connection, no request sent).

    Skipped behind a proxy (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``), where only the proxy can say.
    """
    import socket
    from urllib.parse import urlsplit

    from lamini_lm.errors import OfflineError

    if any(os.environ.get(v) or os.environ.get(v.lower()) for v in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")):
        return
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as e:
        raise OfflineError(
            f"the teacher at {base_url} cannot be reached ({e.strerror or type(e).__name__}); start the server "
            "(e.g. `transformers serve MODEL` or vLLM) or point --base_url at one that runs; nothing was sent"
        ) from None


def check_before_sending(
    messages_list: Sequence[Messages],
    config: TeacherConfig | Sequence[TeacherConfig],
    store: str | os.PathLike,
    *,
    prompt_version: str | None = None,
) -> Estimate:
    """The :func:`estimate` of a run, after checking what would make its first request fail or pay for nothing.

    Raises :class:`~lamini_lm.errors.UsageError` (one line) when something must be sent and an endpoint has no
    credentials, or when the budget cannot buy even the cheapest pending request (its worst case, as the budget
    reserves it). Nothing is sent; answers already in the store need neither a key nor a budget.
    """
    from lamini_lm.errors import UsageError

    endpoints, keys = _prepare(messages_list, config, prompt_version)
    with Store(store) as st:
        cached = st.get_many(keys)
    est = _estimate(endpoints[0], keys, messages_list, cached)
    if not est.requests:
        return est
    for endpoint in endpoints:
        endpoint.api_key()
    for url in dict.fromkeys(e.base_url for e in endpoints):
        check_reachable(url)
    primary = endpoints[0]
    if primary.budget_usd is not None:
        prices = price_table(primary.prices)
        cheapest = min(
            cost_usd(prices, primary.model, max_prompt_tokens(m), primary.max_tokens, batch=primary.batch_api)
            for k, m in zip(keys, messages_list)
            if k not in cached
        )
        if primary.budget_usd < cheapest:
            raise UsageError(
                f"--budget_usd {primary.budget_usd:g} cannot pay for one request (up to ${cheapest:.4f} each for "
                f"{primary.model} with --max_tokens {primary.max_tokens}); raise --budget_usd or lower --max_tokens"
            )
    return est


def _estimate(primary: TeacherConfig, keys, messages_list, cached: dict[str, Response]) -> Estimate:
    todo = {k: m for k, m in zip(keys, messages_list) if k not in cached}
    prompt = sum(estimate_tokens(m) for m in todo.values())
    worst = primary.max_tokens * len(todo)
    answered = [r for r in cached.values() if r.ok]
    if len(answered) >= 10:
        mean = sum(r.usage.completion_tokens for r in answered) / len(answered)
        expected, source = int(mean * len(todo)), f"mean of {len(answered)} stored answers"
    else:
        expected, source = worst // 2, "half of max_tokens"
    prices = price_table(primary.prices)
    batch = primary.batch_api
    return Estimate(
        requests=len(todo),
        cached=len(set(keys)) - len(todo),
        prompt_tokens=prompt,
        completion_tokens_max=worst,
        completion_tokens_expected=expected,
        cost_usd_expected=cost_usd(prices, primary.model, prompt, expected, batch=batch),
        cost_usd_max=cost_usd(prices, primary.model, prompt, worst, batch=batch),
        model=primary.model,
        expected_from=source,
    )


async def achat_completions(
    messages_list: Sequence[Messages],
    config: TeacherConfig | Sequence[TeacherConfig],
    store: str | os.PathLike,
    *,
    desc: str = "teacher",
    prompt_version: str | None = None,
) -> list[Response]:
    """Async :func:`chat_completions` (for callers already inside an event loop)."""
    endpoints, keys = _prepare(messages_list, config, prompt_version)
    return await _achat(endpoints, keys, messages_list, store, desc)


async def _achat(endpoints: list[TeacherConfig], keys: list[str], messages_list, store, desc: str) -> list[Response]:
    primary = endpoints[0]
    with Store(store) as st:
        cached = st.get_many(keys)
        todo: dict[str, Messages] = {}
        for k, m in zip(keys, messages_list):
            if k not in cached and k not in todo:
                todo[k] = m
        n_unique = len(set(keys))
        if todo:
            logger.info("%s: %d requests to send, %d answered from %s", desc, len(todo), n_unique - len(todo), store)
        progress = _Progress(n_unique, n_unique - len(todo), desc, primary.progress and bool(todo))
        try:
            results = await _answer_missing(endpoints, st, todo, progress) if todo else {}
        finally:
            progress.close()
    missing = Response(None, error="not answered (run interrupted)")
    return [cached.get(k) or results.get(k, missing) for k in keys]


def chat_completions(
    messages_list: Sequence[Messages],
    config: TeacherConfig | Sequence[TeacherConfig],
    store: str | os.PathLike,
    *,
    desc: str = "teacher",
    dry_run: bool = False,
    prompt_version: str | None = None,
) -> list[Response]:
    """Answer every chat in ``messages_list`` with the teacher; one :class:`~lamini_lm.records.Response` each, in
    order (failed requests carry ``error``; never None).

    Answers are cached in the SQLite file ``store``: calling again with the same inputs sends only what is missing.
    ``config`` is one :class:`TeacherConfig` or a list of them (several endpoints share the work).
    ``dry_run`` sends nothing: it logs and prints the :func:`estimate` and returns the stored answers, the other
    rows carrying ``error="dry run: not sent"``.
    """
    return keyed_chat_completions(
        messages_list, config, store, desc=desc, dry_run=dry_run, prompt_version=prompt_version
    )[1]


def keyed_chat_completions(
    messages_list: Sequence[Messages],
    config: TeacherConfig | Sequence[TeacherConfig],
    store: str | os.PathLike,
    *,
    desc: str = "teacher",
    dry_run: bool = False,
    prompt_version: str | None = None,
) -> tuple[list[str], list[Response]]:
    """:func:`chat_completions` that also returns each request's store key (what rows record as ``request_key``),
    hashing every request once."""
    endpoints, keys = _prepare(messages_list, config, prompt_version)
    if dry_run:
        with Store(store) as st:
            cached = st.get_many(keys)
        print(_estimate(endpoints[0], keys, messages_list, cached))
        not_sent = Response(None, error="dry run: not sent")
        return keys, [cached.get(k, not_sent) for k in keys]
    return keys, run_sync(_achat(endpoints, keys, messages_list, store, desc))


def run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` to completion, also from inside a running event loop (Jupyter) by using a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=target, name="lamini-lm-teacher")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
