"""``chat_completions``: many chat requests, cached, resumable, rate-limited, retried and costed.

How a run works: requests whose key is in the store are answered from it. The others go to a shared work queue
drained by ``concurrency`` workers per endpoint (so a faster endpoint takes more work). A worker makes one
attempt; on a retryable failure it schedules the retry for later (``Retry-After`` or exponential backoff with
jitter) and takes the next request at once: a request waiting on a backoff never holds a slot, so the endpoint is
never idled by a sleeping retry. Retries jump the queue, so a run does not end on a long tail. Every answer is
committed to the store as it arrives. A run first claims its missing keys in the store: keys another live process
on the same store is answering are waited for, not sent again. :class:`TeacherSession` takes keyed requests one at
a time while others are in flight (a dialogue's next turn, the next chunk of a large input), with the same
promises: the run never waits for a round or a chunk to drain.

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
import heapq
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Coroutine, Sequence
from typing import Any, NamedTuple

from lamini_lm.generation.config import TeacherConfig, as_endpoints
from lamini_lm.generation.cost import Estimate, cost_usd, estimate_tokens, max_prompt_tokens, price_table
from lamini_lm.generation.limiter import backoff_delay
from lamini_lm.generation.store import Store, request_key
from lamini_lm.records import Response, Usage

__all__ = [
    "Answer",
    "TeacherSession",
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
    pool: str = "teacher"  # which configs of the run send it (a teacher, a user simulator)
    attempt: int = 0
    priority: float = 0.0
    future: asyncio.Future | None = None


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
    """The real-time requests of one call, fed while it runs: :meth:`submit` queues a job and returns the future
    of its response, so the workers never wait for a round to drain (a dialogue's next turn is queued the moment
    its last one is answered). Budget, spending, clients and rate limits last for the whole call.

    ``pools`` names groups of endpoint configs (``{"teacher": [...], "user": [...]}``); configs of different pools
    on the same endpoint (base URL and key) share its client, its rate limiter and its ``concurrency`` slots, and
    each job is sent with its own pool's model and sampling. Lower ``priority`` is served first (then FIFO);
    retries whose wait is over go before any fresh job.
    """

    def __init__(self, pools: dict[str, list[TeacherConfig]] | list[TeacherConfig], store: Store, progress):
        self.pools = {"teacher": list(pools)} if isinstance(pools, list) else {k: list(v) for k, v in pools.items()}
        self.store = store
        self.progress = progress
        primary = next(iter(self.pools.values()))[0]
        self.prices = price_table(primary.prices)
        self.budget = primary.budget_usd
        self.spent = self.reserved = 0.0
        self.stop_reason: str | None = None
        self.endpoints: list = []  # clients, made on start (inside the event loop)
        self.workers: list[asyncio.Future] = []

    def start(self) -> None:
        """Ready to take jobs; the clients and workers are made on the first job (an all-cached run needs no key)."""
        if hasattr(self, "fresh"):
            return
        self.fresh: dict[str, list] = {p: [] for p in self.pools}  # heaps of (priority, seq, job)
        self.ready: dict[str, deque[_Job]] = {p: deque() for p in self.pools}  # retries whose wait is over
        self.outstanding = 0
        self.closing = False
        self._seq = 0
        self._timers: set[asyncio.TimerHandle] = set()

    def _wake(self, pool: str | None = None) -> None:
        """Wake one idle worker of each endpoint serving ``pool`` (None: every idle worker, to see the run end);
        waking all of them for every job would cost each job a pass of every idle worker."""
        for ep in self.endpoints:
            if pool is None:
                while ep.idle:
                    f = ep.idle.popleft()
                    if not f.done():
                        f.set_result(None)
            elif pool in ep.served:
                while ep.idle:
                    f = ep.idle.popleft()
                    if not f.done():
                        f.set_result(None)
                        break

    def _start_workers(self) -> None:
        from lamini_lm.generation.client import Endpoint

        by_id: dict[tuple[str, str], dict[str, TeacherConfig]] = {}
        for pool, configs in self.pools.items():
            for c in configs:
                by_id.setdefault((c.base_url, c.api_key_env), {}).setdefault(pool, c)
        for served in by_id.values():
            ep = Endpoint(next(iter(served.values())))
            ep.served = served  # pool -> the config its jobs are sent with on this endpoint
            ep.idle = deque()  # futures of this endpoint's idle workers
            self.endpoints.append(ep)
        self.workers = [
            asyncio.ensure_future(self._worker(ep)) for ep in self.endpoints for _ in range(ep.config.concurrency)
        ]

    def submit(self, job: _Job, priority: float = 0.0) -> asyncio.Future:
        """Queue ``job`` (its ``pool``); the future resolves to its :class:`~lamini_lm.records.Response`."""
        if not self.workers:
            self._start_workers()
        job.future = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self.fresh[job.pool], (priority, self._seq, job))
        self.outstanding += 1
        self._wake(job.pool)
        return job.future

    async def run(self, jobs: list[_Job]) -> dict[str, Response]:
        """Answer ``jobs`` (submitted together); returns their responses by key."""
        self.start()
        futures = [self.submit(j) for j in jobs]
        await self._gather(futures)
        return {j.key: f.result() for j, f in zip(jobs, futures)}

    async def _gather(self, futures) -> None:
        # a worker that crashed fails the call instead of leaving its futures unresolved
        everything = asyncio.gather(*futures)
        done, _ = await asyncio.wait([everything, *self.workers], return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            t.result()
        await everything

    async def aclose(self, drain: bool = True) -> None:
        """Let the workers finish what is queued (``drain``; else drop it: an error or Ctrl-C ends the call), then
        stop them and close the clients."""
        try:
            if self.workers and drain:
                self.closing = True
                self._wake()
                await asyncio.gather(*self.workers)
        finally:
            for w in self.workers:
                w.cancel()
            for t in getattr(self, "_timers", ()):
                t.cancel()
            for ep in self.endpoints:
                await ep.aclose()

    async def _next(self, ep) -> _Job | None:
        while True:
            for pool in ep.served:
                if self.ready[pool]:
                    return self.ready[pool].popleft()
            best = None
            for pool in ep.served:
                heap = self.fresh[pool]
                if heap and (best is None or heap[0] < self.fresh[best][0]):
                    best = pool
            if best is not None:
                return heapq.heappop(self.fresh[best])[2]
            if self.closing and self.outstanding == 0:
                return None
            idle = asyncio.get_running_loop().create_future()
            ep.idle.append(idle)
            await idle

    def _requeue(self, job: _Job, timer: asyncio.TimerHandle | None = None, front: bool = False) -> None:
        self._timers.discard(timer)
        if front:
            self.ready[job.pool].appendleft(job)
        else:
            self.ready[job.pool].append(job)
        self._wake(job.pool)

    def _schedule(self, job: _Job, delay: float) -> None:
        loop = asyncio.get_running_loop()
        holder: list[asyncio.TimerHandle] = []
        timer = loop.call_later(delay, lambda: self._requeue(job, holder[0]))
        holder.append(timer)
        self._timers.add(timer)

    def _finish(self, job: _Job, response: Response, persist: bool) -> None:
        if persist:
            self.store.put(job.key, response)
        self.outstanding -= 1
        p = self.progress
        p.tokens += response.usage.total_tokens
        p.spent = self.spent
        p.failed += not response.ok
        p.bar.update(1)
        p.update()
        if not job.future.done():
            job.future.set_result(response)
        if self.outstanding == 0 and self.closing:
            self._wake()

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
        while (job := await self._next(ep)) is not None:
            try:
                await self._attempt(ep, job)
            except Exception as e:  # a bug, not a teacher failure: fail this job's caller, then the call
                self.outstanding -= 1
                if not job.future.done():
                    job.future.set_exception(e)
                raise

    async def _attempt(self, ep, job: _Job) -> None:
        cfg: TeacherConfig = ep.served[job.pool]
        # stopped (budget, bad key) before this job, or its worst case would pass the budget: not sent
        if self.stop_reason is not None or (reserved := self._reserve(job, cfg.model)) is None:
            self._finish(job, Response(None, error=self.stop_reason), persist=False)
            return
        try:
            await ep.limiter.acquire(job.est_prompt + job.max_tokens)
            attempt = await ep.complete(job.messages, job.max_tokens, cfg)
        except BaseException:
            self.reserved -= reserved
            raise
        # what to do with the outcome runs on the next turn of the event loop: this worker takes its next job and
        # writes that request to the socket first, so the endpoint's slot is not left idle while the answer is
        # committed and counted (the reservation holds until then, so the budget stays conservative)
        if attempt.fatal and self.stop_reason is None:  # now: this worker's next job must not be sent
            logger.error("%s: %s; sending no more requests", ep.name, attempt.error)
            self.stop_reason = f"run stopped: {attempt.error}"
        asyncio.get_running_loop().call_soon(self._outcome, ep, job, cfg, attempt, reserved)

    def _outcome(self, ep, job: _Job, cfg: TeacherConfig, attempt, reserved: float) -> None:
        self.reserved -= reserved
        try:
            self._settle(ep, job, cfg, attempt)
        except Exception as e:  # a bug (or a store that cannot be written): fail this job's caller, loudly
            if not job.future.done():
                self.outstanding -= 1
                job.future.set_exception(e)
                if self.outstanding == 0 and self.closing:
                    self._wake()

    def _settle(self, ep, job: _Job, cfg: TeacherConfig, attempt) -> None:
        if attempt.response is not None:
            self._answer(job, attempt.response, cfg)
        elif attempt.fatal:  # a bad key or an empty account: the run stopped (above) instead of failing every row
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


class Answer(NamedTuple):
    """What :meth:`TeacherSession.ask` gives back: the request's store key, its response, and whether the
    response was already in the store when asked (``from_store``: nothing was sent for it)."""

    key: str
    response: Response
    from_store: bool


class TeacherSession:
    """Keyed requests asked one at a time while others are in flight, exactly once across processes.

    Each :meth:`ask` is answered from the store when it holds the key; otherwise the key is claimed in the store
    (claims of the asks made in the same event-loop turn go in one transaction) and sent by the shared
    :class:`_Run`, or, when another live process holds the claim, waited for (and taken over if that process
    dies). The same key asked twice while in flight is sent once. ``pools``: ``{"teacher": configs, "user":
    configs}`` (one budget for all of them: the first pool's ``budget_usd``); ``total``: requests expected, for
    the progress bar (:meth:`expect` changes it). What the session did, over its whole life: ``requests``
    (distinct keys asked), ``from_store`` (of those, answered by the store when first asked) and ``sent``.

    Example:
        >>> async def main(cfg):  # doctest: +SKIP
        ...     with Store("teacher.sqlite") as st:
        ...         async with TeacherSession({"teacher": [cfg]}, st, total=2) as s:
        ...             a, b = await asyncio.gather(s.ask([{"role": "user", "content": "hi"}]), s.ask(...))
    """

    def __init__(
        self,
        pools: dict[str, Sequence[TeacherConfig]],
        store: Store,
        *,
        desc: str = "teacher",
        total: int = 0,
        progress: bool | None = None,
    ):
        self.pools = {name: as_endpoints(list(configs)) for name, configs in pools.items()}
        primary = next(iter(self.pools.values()))[0]
        self.store = store
        self.progress = _Progress(total, 0, desc, primary.progress if progress is None else progress)
        self.run = None if primary.batch_api else _Run(self.pools, store, self.progress)
        self._sampling = {name: configs[0].sampling() for name, configs in self.pools.items()}
        self._open: dict[str, tuple[_Job, list[asyncio.Future]]] = {}  # key -> job and the futures asking it
        self._asked: list[str] = []  # keys asked since the last claim transaction
        self._waiting: set[str] = set()  # keys another process is answering
        self._poller: asyncio.Task | None = None
        self._told = False
        # the run's counts: distinct requests asked, of which answered from the store (the first time they were
        # asked: a request this session answered and is asked again counts once), and requests sent (a transient
        # failure asked again later is sent again)
        self.requests = self.from_store = self.sent = 0

    async def __aenter__(self) -> TeacherSession:
        if self.run is None:
            raise ValueError("TeacherSession sends real-time requests; the Batch API goes through chat_completions")
        self.run.start()
        return self

    async def __aexit__(self, exc_type, *exc) -> None:
        try:
            if self._poller is not None:
                self._poller.cancel()
            await self.run.aclose(drain=exc_type is None)
        finally:
            self.progress.close()

    def expect(self, more: int) -> None:
        """Add ``more`` (negative: fewer) to the progress bar's total."""
        self.progress.bar.total = (self.progress.bar.total or 0) + more
        self.progress.bar.refresh()

    def key(self, messages: Messages, pool: str = "teacher", prompt_version: str | None = None) -> str:
        return request_key(self.pools[pool][0].model, messages, self._sampling[pool], prompt_version)

    def ask(
        self, messages: Messages, pool: str = "teacher", prompt_version: str | None = None, priority: float = 0.0
    ) -> asyncio.Future:
        """The future :class:`Answer` of one request (``priority``: lower is sent first)."""
        key = self.key(messages, pool, prompt_version)
        future = asyncio.get_running_loop().create_future()
        if key in self._open:
            self._open[key][1].append(future)
            return future
        cfg = self.pools[pool][0]
        job = _Job(key, messages, cfg.max_tokens, estimate_tokens(messages), max_prompt_tokens(messages), pool=pool)
        job.priority = priority
        self._open[key] = (job, [future])
        if not self._asked:
            asyncio.get_running_loop().call_soon(self._claim)
        self._asked.append(key)
        return future

    def _resolve(self, key: str, response: Response, from_store: bool) -> None:
        _, futures = self._open.pop(key)
        for f in futures:
            if not f.done():
                f.set_result(Answer(key, response, from_store))

    def _claim(self) -> None:
        keys, self._asked = self._asked, []
        cached = self.store.get_many(keys)
        new = self.store.first_asked(keys)
        self.requests += len(new)
        self.from_store += len(new.intersection(cached))
        for key, response in cached.items():
            self._resolve(key, response, True)
        self.progress.bar.update(len(cached))
        rest = [k for k in keys if k not in cached]
        self._send(rest, self.store.claim(rest) if rest else set())

    def _send(self, keys: list[str], mine: set[str]) -> None:
        for key in keys:
            if key not in mine:
                self._waiting.add(key)
                continue
            self._waiting.discard(key)
            self.sent += 1
            job = self._open[key][0]
            self.run.submit(job, job.priority).add_done_callback(
                lambda f, k=key: self._resolve(k, f.result(), False) if not f.exception() else self._fail(k, f)
            )
        if self._waiting and self._poller is None:
            self._poller = asyncio.ensure_future(self._poll())

    def _fail(self, key: str, f: asyncio.Future) -> None:
        for g in self._open.pop(key)[1]:
            if not g.done():
                g.set_exception(f.exception())

    async def _poll(self) -> None:
        """Answers of the keys other processes are fetching, and the claims of those that died."""
        while self._waiting:
            if not self._told:
                owners = sorted(set(self.store.claimed_by_others(self._waiting).values()))
                logger.warning(
                    "%d requests are being answered by another process on %s (%s): waiting for its answers",
                    len(self._waiting),
                    self.store.path,
                    ", ".join(owners) or "just finished",
                )
                self._told = True
            await asyncio.sleep(CLAIM_POLL_SECONDS)
            found = self.store.get_many(self._waiting)
            for key, response in found.items():
                self._waiting.discard(key)
                self._resolve(key, response, False)
            self.progress.bar.update(len(found))
            rest = list(self._waiting)
            if rest:
                self._send(rest, self.store.claim(rest))
        self._poller = None


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
