"""OpenAI Batch API mode: half the price, answers within the completion window (up to 24 h).

The missing requests are written as JSONL files (``custom_id`` = the store key), split at
``batch_max_requests`` lines or ``batch_max_bytes`` bytes (the API takes at most 50,000 requests and 200 MB a
file), uploaded and submitted. Each batch id is committed to the store right after submission, so a restarted
run resumes polling instead of paying again. Results are mapped back by ``custom_id`` and committed as each batch
completes. A failed or expired batch leaves its unanswered keys open: the next run submits them again.

Used through ``chat_completions`` with ``TeacherConfig(batch_api=True)`` (CLI: ``--batch_api``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Iterator

from lamini_lm.generation.config import TeacherConfig
from lamini_lm.generation.cost import cost_usd, max_prompt_tokens, price_table
from lamini_lm.generation.store import Store
from lamini_lm.records import Response

__all__ = ["batch_lines", "run_batches"]

logger = logging.getLogger(__name__)

_DONE = {"completed", "failed", "expired", "cancelled"}


def batch_lines(todo: dict[str, list[dict]], cfg: TeacherConfig) -> Iterator[bytes]:
    """One JSONL request line per key."""
    for key, messages in todo.items():
        line = {"custom_id": key, "method": "POST", "url": "/v1/chat/completions", "body": cfg.request_body(messages)}
        yield (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")


def _chunks(todo: dict[str, list[dict]], cfg: TeacherConfig) -> Iterator[tuple[list[str], bytes]]:
    keys: list[str] = []
    parts: list[bytes] = []
    size = 0
    for key, line in zip(todo, batch_lines(todo, cfg)):
        if len(line) > cfg.batch_max_bytes:
            raise ValueError(f"request {key[:12]} alone is {len(line):,} bytes, over batch_max_bytes")
        if keys and (len(keys) >= cfg.batch_max_requests or size + len(line) > cfg.batch_max_bytes):
            yield keys, b"".join(parts)
            keys, parts, size = [], [], 0
        keys.append(key)
        parts.append(line)
        size += len(line)
    if keys:
        yield keys, b"".join(parts)


async def run_batches(endpoints: list[TeacherConfig], store: Store, todo: dict[str, list[dict]], progress) -> dict:
    """Submit what is missing, resume polling open batches, and return the answers of ``todo``'s keys."""
    from lamini_lm.generation.client import Endpoint

    cfg = endpoints[0]
    if len(endpoints) > 1:
        logger.warning("Batch API mode uses only the first endpoint (%s)", cfg.base_url)
    ep = Endpoint(cfg)
    prices = price_table(cfg.prices)
    results: dict[str, Response] = {}
    try:
        pending = [b for b in store.open_batches() if b["base_url"] == cfg.base_url and set(b["keys"]) & todo.keys()]
        if pending:
            logger.info("resuming %d submitted batch(es): %s", len(pending), [b["batch_id"] for b in pending])
        covered = {k for b in pending for k in b["keys"]}
        # an earlier round of the same call (keys taken over from another process) has spent part of the budget
        budget_left = None if cfg.budget_usd is None else cfg.budget_usd - progress.spent
        new = {k: m for k, m in todo.items() if k not in covered}
        for n, (keys, data) in enumerate(_chunks(new, cfg)):
            worst = sum(
                cost_usd(prices, cfg.model, max_prompt_tokens(new[k]), cfg.max_tokens, batch=True) for k in keys
            )
            if budget_left is not None:
                if worst > budget_left:
                    reason = f"budget of ${cfg.budget_usd:.4f} reached before this batch was submitted"
                    for k in keys:
                        results[k] = Response(None, error=reason)
                        progress.failed += 1
                    continue
                budget_left -= worst
            file_id = await ep.upload_batch_file(f"lamini-lm-batch-{n}.jsonl", data)
            batch_id = await ep.create_batch(file_id)
            store.add_batch(batch_id, cfg.base_url, file_id, keys)  # committed before anything else can fail
            logger.info("submitted batch %s (%d requests, %.1f MB)", batch_id, len(keys), len(data) / 1e6)
            pending.append({"batch_id": batch_id, "keys": keys})
        while pending:
            still = []
            for b in pending:
                info = await ep.retrieve_batch(b["batch_id"])
                if info["status"] not in _DONE:
                    still.append(b)
                    continue
                await _collect(ep, store, b, info, prices, results, progress)
            pending = still
            if pending:
                await asyncio.sleep(cfg.batch_poll_interval)
    finally:
        await ep.aclose()
    return results


async def _collect(ep, store: Store, batch: dict, info: dict, prices: dict, results: dict, progress) -> None:
    from lamini_lm.generation.client import Attempt, response_from_body, retryable_status

    cfg: TeacherConfig = ep.config
    answered: set[str] = set()
    for field in ("output_file_id", "error_file_id"):
        if not info.get(field):
            continue
        for n, line in enumerate((await ep.file_text(info[field])).splitlines()):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                key = row["custom_id"]
            except (ValueError, KeyError):
                logger.warning("batch %s %s line %d unreadable: %.200s", batch["batch_id"], field, n, line)
                continue
            resp = row.get("response") or {}
            status = resp.get("status_code")
            if status == 200:
                attempt = response_from_body(resp.get("body"), cfg.model, cfg.top_logprobs)
            else:
                err = row.get("error") or (resp.get("body") or {}).get("error") or {}
                message = err.get("message") if isinstance(err, dict) else str(err)
                retryable = status is not None and retryable_status(status)
                attempt = Attempt(error=f"batch error {status or ''}: {message}".strip(), retryable=retryable)
            if attempt.response is not None:
                u = attempt.response.usage
                cost = cost_usd(prices, cfg.model, u.prompt_tokens, u.completion_tokens, batch=True)
                response = dataclasses.replace(attempt.response, cost_usd=cost)
                store.put(key, response)
                progress.spent += cost
                progress.tokens += u.total_tokens
            else:
                response = Response(None, error=attempt.error)
                if not attempt.retryable:
                    store.put(key, response)
                progress.failed += 1
            results[key] = response
            answered.add(key)
            progress.bar.update(1)
            progress.update()
    missing = [k for k in batch["keys"] if k not in answered]
    for k in missing:
        results[k] = Response(None, error=f"batch {batch['batch_id']} ended {info['status']} without this answer")
    store.set_batch_status(batch["batch_id"], info["status"])
    logger.info("batch %s %s: %d answers, %d missing", batch["batch_id"], info["status"], len(answered), len(missing))
