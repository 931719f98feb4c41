"""One OpenAI-compatible endpoint, through the ``openai`` package: the only module of lamini-lm importing it.

:class:`Endpoint` makes exactly one HTTP attempt per call and classifies the outcome: an answer, a retryable
failure (408/409/429/5xx, timeout, connection error, a malformed or empty body) with the server's
``Retry-After``, a context-length error, or a permanent failure. The retry policy, limits and store live in
:mod:`lamini_lm.generation.runner`, so a request waiting on a backoff never holds a concurrency slot.

Example:
    >>> import asyncio
    >>> from lamini_lm.generation import TeacherConfig
    >>> from lamini_lm.generation.client import Endpoint
    >>> async def ask():  # doctest: +SKIP
    ...     ep = Endpoint(TeacherConfig(base_url="http://127.0.0.1:8000/v1", model="my-model"))
    ...     return await ep.complete([{"role": "user", "content": "hi"}], max_tokens=16)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lamini_lm.generation.config import TeacherConfig
from lamini_lm.generation.limiter import RateLimiter, parse_context_error, parse_retry_after
from lamini_lm.records import Response, Usage

__all__ = ["Attempt", "Endpoint", "RETRYABLE_STATUS", "response_from_body", "retryable_status"]

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 409, 429}  # and every 5xx


@dataclass
class Attempt:
    """The outcome of one HTTP attempt."""

    response: Response | None = None  # an answer
    error: str | None = None  # why there is no answer
    retryable: bool = False
    retry_after: float | None = None
    context: tuple[int, int | None] | None = None  # (context length, prompt tokens) of a context-length error
    fatal: bool = False  # every request would fail the same way (bad key, no quota): stop the run


def response_from_body(body: Any, model: str, top_logprobs: int = 0) -> Attempt:
    """Turn a chat-completion JSON body into an answer, or a retryable failure if it is malformed or empty.

    ``top_logprobs`` > 0: the answer keeps the teacher's top-k log-probs per generated token (:class:`Response`'s
    ``token_logprobs``); a body without them (tokens as ids) is a fatal error."""
    try:
        choice = body["choices"][0]
        message = choice["message"]
        text = message.get("content")
        finish = choice.get("finish_reason")
    except (KeyError, IndexError, TypeError, AttributeError):
        return Attempt(error=f"malformed response body: {str(body)[:200]!r}", retryable=True)
    if finish == "content_filter":
        return Attempt(error="the teacher's content filter blocked the answer (finish_reason=content_filter)")
    usage = body.get("usage") or {}
    if not isinstance(text, str) or not text:
        # nothing generated: a glitch worth retrying (whitespace the model did generate is its answer, for the
        # quality stage to judge)
        refusal = message.get("refusal") if isinstance(message, dict) else None
        if refusal:
            return Attempt(error=f"refused: {refusal}")
        return Attempt(error=f"empty answer (finish_reason={finish})", retryable=True)
    token_logprobs = None
    if top_logprobs:
        token_logprobs, error = _token_logprobs(choice.get("logprobs"), top_logprobs)
        if error:
            return Attempt(error=error, fatal=True)  # every answer of this server would lack them the same way
    return Attempt(
        Response(
            text,
            finish_reason=finish,
            usage=Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)),
            model=body.get("model") or model,
            token_logprobs=token_logprobs,
        )
    )


def _token_id(token: Any) -> int | None:
    if isinstance(token, str) and token.startswith("token_id:"):
        try:
            return int(token[len("token_id:") :])
        except ValueError:
            return None
    return None


def _token_logprobs(logprobs: Any, k: int) -> tuple[dict[str, list] | None, str | None]:
    """A choice's ``logprobs.content`` (vLLM with ``return_tokens_as_token_ids``) as ``{token_ids, top_ids,
    top_logprobs}``, or the one-line reason it cannot be."""
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list):
        return None, "--top_logprobs: the teacher returned no logprobs.content (serve an open model with vLLM)"
    ids, top_ids, top_lps = [], [], []
    for entry in content:
        tid = _token_id(entry.get("token") if isinstance(entry, dict) else None)
        tops = entry.get("top_logprobs") if isinstance(entry, dict) else None
        pairs = [(_token_id(t.get("token")), t.get("logprob")) for t in tops or [] if isinstance(t, dict)]
        if tid is None or not pairs or any(i is None or not isinstance(lp, (int, float)) for i, lp in pairs):
            return None, (
                "--top_logprobs: the teacher's tokens are text, not 'token_id:<id>'; token-level columns need the "
                "ids (vLLM: return_tokens_as_token_ids, sent with the request; or start it with "
                "--return-tokens-as-token-ids)"
            )
        pairs = sorted(pairs, key=lambda p: -p[1])[:k]
        ids.append(tid)
        top_ids.append([i for i, _ in pairs])
        top_lps.append([float(lp) for _, lp in pairs])
    return {"token_ids": ids, "top_ids": top_ids, "top_logprobs": top_lps}, None


class Endpoint:
    """An ``openai.AsyncOpenAI`` client (its own retries off) with the endpoint's rate limiter."""

    def __init__(self, config: TeacherConfig):
        import openai

        self.config = config
        self.name = config.base_url
        self.limiter = RateLimiter(config.rpm, config.tpm)
        self._raw = _http_response_type()
        self.client = openai.AsyncOpenAI(
            base_url=config.base_url, api_key=config.api_key(), max_retries=0, timeout=config.timeout
        )

    async def complete(
        self, messages: Sequence[Mapping[str, str]], max_tokens: int, config: TeacherConfig | None = None
    ) -> Attempt:
        """One attempt; ``config`` (default: the endpoint's) sets the model and sampling of the request body, so
        two roles of one run (a teacher and a user simulator) share this endpoint's connections and slots."""
        import openai

        c = config or self.config
        body = c.request_body(messages, max_tokens)
        try:
            # the client's plain POST with the raw HTTP response: we validate the JSON ourselves (a garbage body
            # is a retryable failure, not an answer) and skip the typed-params transform and pydantic models,
            # which are most of the openai client's CPU per request; errors are still openai's typed exceptions
            raw = await self.client.post("/chat/completions", cast_to=self._raw, body=body)
            body = json.loads(raw.content)
        except openai.APIStatusError as e:
            return _classify_status(e)
        except (openai.APITimeoutError, openai.APIConnectionError) as e:
            return Attempt(error=f"{type(e).__name__}: {e}", retryable=True)
        except (ValueError, UnicodeDecodeError, openai.APIResponseValidationError) as e:
            return Attempt(error=f"malformed response body: {e}", retryable=True)
        return response_from_body(body, c.model, c.top_logprobs)

    # Batch API (files + batches endpoints)
    async def upload_batch_file(self, name: str, data: bytes) -> str:
        f = await self.client.files.create(file=(name, data, "application/jsonl"), purpose="batch")
        return f.id

    async def create_batch(self, input_file_id: str) -> str:
        b = await self.client.batches.create(
            input_file_id=input_file_id,
            endpoint="/v1/chat/completions",
            completion_window=self.config.batch_completion_window,
            metadata={"created_by": "lamini-lm"},
        )
        return b.id

    async def retrieve_batch(self, batch_id: str) -> dict[str, Any]:
        b = await self.client.batches.retrieve(batch_id)
        counts = b.request_counts
        return {
            "status": b.status,
            "output_file_id": b.output_file_id,
            "error_file_id": b.error_file_id,
            "completed": getattr(counts, "completed", 0) if counts else 0,
            "failed": getattr(counts, "failed", 0) if counts else 0,
        }

    async def file_text(self, file_id: str) -> str:
        content = await self.client.files.content(file_id)
        return content.text

    async def aclose(self) -> None:
        await self.client.close()


def _http_response_type() -> type:
    """The HTTP response class of the installed openai (httpx2 in openai 3, httpx before)."""
    try:
        import httpx2

        return httpx2.Response
    except ImportError:  # pragma: no cover - older openai
        import httpx

        return httpx.Response


def retryable_status(status: int) -> bool:
    """Whether an HTTP status is worth retrying: 408, 409, 429 and every 5xx."""
    return status in RETRYABLE_STATUS or status >= 500


def _classify_status(e: Any) -> Attempt:
    status = e.status_code
    message = _error_message(e)
    retry_after = parse_retry_after(e.response.headers if e.response is not None else None)
    if status in (401, 403) or "insufficient_quota" in message:
        return Attempt(error=f"HTTP {status}: {message}", fatal=True)
    if retryable_status(status):
        return Attempt(error=f"HTTP {status}: {message}", retryable=True, retry_after=retry_after)
    context = parse_context_error(message) if status in (400, 413, 422) else None
    if context is not None:
        return Attempt(error=f"prompt too long for the context: {message}", context=context)
    return Attempt(error=f"HTTP {status}: {message}")


def _error_message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            code = inner.get("code")
            return f"{inner['message']}" + (f" ({code})" if code else "")
        if isinstance(inner, str):
            return inner
    return str(getattr(e, "message", e))[:500]
