"""``TeacherConfig``: where the teacher lives, how it samples, and how hard we may push it.

One config describes one endpoint (an OpenAI-compatible ``base_url`` with its own limits). Several endpoints
share one run in two ways:

* ``base_url`` holds several URLs separated by commas (vLLM replicas on many GPUs): each replica gets a copy of
  the config, so ``concurrency``, ``rpm`` and ``tpm`` are **per endpoint**;
* the Python API takes a list of configs (``chat_completions(msgs, [cfg_a, cfg_b], store)``), or the CLI an
  ``--endpoints endpoints.yaml`` file (a list of mappings overriding this config's fields), for endpoints that
  differ in key, limits or URL.

All endpoints of one run must serve the same ``model`` name with the same sampling settings, because the store
keys a request by them: a cached answer is valid whichever endpoint produced it.

Example:
    >>> from lamini_lm.generation import TeacherConfig
    >>> cfg = TeacherConfig(base_url="http://127.0.0.1:8000/v1,http://127.0.0.1:8001/v1", model="my-model")
    >>> [e.base_url for e in cfg.expand()]
    ['http://127.0.0.1:8000/v1', 'http://127.0.0.1:8001/v1']
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lamini_lm.config import ConfigError, check_choice, check_range
from lamini_lm.errors import UsageError

__all__ = ["OPENAI_BASE_URL", "TeacherConfig", "as_endpoints"]

OPENAI_BASE_URL = "https://api.openai.com/v1"


@dataclass
class TeacherConfig:
    """Settings of the teacher client (one endpoint; see the module docstring for several)."""

    # Endpoint
    base_url: str = field(
        default=OPENAI_BASE_URL,
        metadata={"help": "OpenAI-compatible base URL (vLLM, `transformers serve`, OpenAI); several replicas: a,b,c"},
    )
    model: str = field(default="gpt-3.5-turbo", metadata={"help": "model name sent with each request"})
    api_key_env: str = field(
        default="OPENAI_API_KEY",
        metadata={"help": "environment variable holding the API key (never logged or stored)"},
    )
    endpoints: str | None = field(
        default=None,
        metadata={"help": "YAML file: a list of mappings overriding fields of this config, one per extra endpoint"},
    )
    # Sampling (part of the store key)
    max_tokens: int = field(default=1024, metadata={"help": "maximum completion tokens per request"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling top_p"})
    top_logprobs: int = field(
        default=0,
        metadata={
            "help": "keep the teacher's K most likely tokens and their log-probs per generated token, on the same "
            "paid pass (vLLM: logprobs + top_logprobs, tokens as ids); the response rows get the sparse columns "
            "token-level distillation trains on (0: not asked)"
        },
    )
    max_tokens_param: str = field(
        default="max_tokens",
        metadata={"help": "request field carrying max_tokens ('max_completion_tokens' for newer OpenAI models)"},
    )
    # Limits (per endpoint)
    concurrency: int = field(
        default=32,
        metadata={
            "help": "requests in flight per endpoint; against a server that queues (vLLM, transformers serve), "
            "20-25%% above its batch slots keeps them full"
        },
    )
    rpm: int = field(default=0, metadata={"help": "requests per minute per endpoint (0: no limit)"})
    tpm: int = field(default=0, metadata={"help": "tokens per minute per endpoint, prompt + max_tokens (0: no limit)"})
    # Retries
    max_retries: int = field(default=8, metadata={"help": "retries per request on 408/409/429/5xx/timeouts"})
    backoff_base: float = field(
        default=0.5, metadata={"help": "first backoff ceiling in seconds (doubles each retry; full jitter)"}
    )
    backoff_max: float = field(default=60.0, metadata={"help": "longest backoff in seconds"})
    timeout: float = field(default=120.0, metadata={"help": "seconds before one request times out (and is retried)"})
    min_max_tokens: int = field(
        default=16,
        metadata={"help": "on a context-length error, shrink max_tokens down to this, else record the row as failed"},
    )
    # Cost
    budget_usd: float | None = field(
        default=None,
        metadata={"aliases": ["--budget"], "help": "stop cleanly before this run's new spending exceeds USD"},
    )
    prices: str | None = field(
        default=None,
        metadata={"help": "price overrides: YAML/JSON file or 'model=in,out;model2=in,out' in USD per 1M tokens"},
    )
    # Batch API
    batch_api: bool = field(default=False, metadata={"help": "use the OpenAI Batch API (half price, up to 24 h)"})
    batch_poll_interval: float = field(default=30.0, metadata={"help": "seconds between Batch API status polls"})
    batch_max_requests: int = field(default=50_000, metadata={"help": "requests per Batch API input file"})
    batch_max_bytes: int = field(default=190_000_000, metadata={"help": "bytes per Batch API input file (<200 MB)"})
    batch_completion_window: str = field(default="24h", metadata={"help": "Batch API completion window"})
    # Display
    progress: bool = field(default=True, metadata={"help": "show a progress bar (done/total, req/s, tokens, $, ETA)"})

    def __post_init__(self) -> None:
        for name in ("concurrency", "max_tokens", "min_max_tokens", "batch_max_requests", "batch_max_bytes"):
            check_range(name, getattr(self, name), 1)
        for name in ("rpm", "tpm", "max_retries", "backoff_base", "backoff_max"):
            check_range(name, getattr(self, name), 0)
        check_range("temperature", self.temperature, 0, 2)
        check_range("top_p", self.top_p, 0, 1, low_open=True)
        # floats, as the CLI parses them: the sampling settings are hashed into the store key, and Python's
        # TeacherConfig(temperature=0) must find what `--temperature 0` paid for (0 and 0.0 hash apart in JSON)
        self.temperature, self.top_p = float(self.temperature), float(self.top_p)
        check_range("top_logprobs", self.top_logprobs, 0)
        check_range("timeout", self.timeout, 0, low_open=True)
        check_range("batch_poll_interval", self.batch_poll_interval, 0, low_open=True)
        check_range("budget_usd", self.budget_usd, 0, low_open=True)
        check_choice("max_tokens_param", self.max_tokens_param, ("max_tokens", "max_completion_tokens"))
        if not self.model:
            raise ConfigError("--model: the teacher's model name is empty")

    def sampling(self) -> dict[str, Any]:
        """The sampling parameters sent with each request (and hashed into the store key; ``top_logprobs`` only
        when asked, so the keys of runs without it stay what they were)."""
        out: dict[str, Any] = {"max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p}
        if self.top_logprobs:
            out["top_logprobs"] = self.top_logprobs
        return out

    def request_body(self, messages: Sequence[Mapping[str, str]], max_tokens: int | None = None) -> dict[str, Any]:
        """The chat-completions request body (real-time and Batch API alike); ``max_tokens`` overrides the config's
        (after a context-length error shrank it)."""
        body = {
            "model": self.model,
            "messages": list(messages),
            self.max_tokens_param: self.max_tokens if max_tokens is None else max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
        }
        if self.top_logprobs:  # vLLM's extension names every token "token_id:<id>": no re-tokenising
            body.update(logprobs=True, top_logprobs=self.top_logprobs, return_tokens_as_token_ids=True)
        return body

    def api_key(self) -> str:
        """The key from ``api_key_env``; local servers get a placeholder, api.openai.com an error if unset."""
        key = os.environ.get(self.api_key_env)
        if key:
            return key
        if "api.openai.com" in self.base_url:
            raise UsageError(
                f"no API key: set ${self.api_key_env} to your OpenAI key, or point --base_url at another server"
            )
        return "EMPTY"  # vLLM and `transformers serve` accept any key

    def expand(self) -> list[TeacherConfig]:
        """One config per endpoint: the comma-separated URLs, then the ``endpoints`` YAML file's entries."""
        return _expand(self)


def _expand(cfg: TeacherConfig) -> list[TeacherConfig]:
    urls = [u.strip() for u in cfg.base_url.split(",") if u.strip()]
    if not urls:
        raise ConfigError("--base_url is empty")
    out = [dataclasses.replace(cfg, base_url=u, endpoints=None) for u in urls]
    if cfg.endpoints:
        import yaml

        try:
            with open(cfg.endpoints, encoding="utf-8") as f:
                entries = yaml.safe_load(f)
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"{cfg.endpoints}: cannot read endpoints file: {e}") from None
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ConfigError(f"{cfg.endpoints}: expected a YAML list of mappings (one per endpoint)")
        known = {f.name for f in dataclasses.fields(TeacherConfig)}
        for i, entry in enumerate(entries):
            unknown = sorted(set(entry) - known)
            if unknown:
                raise ConfigError(f"{cfg.endpoints}: entry {i}: unknown setting(s) {unknown}")
            out.extend(_expand(dataclasses.replace(cfg, endpoints=None, **entry)))
    return out


def as_endpoints(config: TeacherConfig | Sequence[TeacherConfig]) -> list[TeacherConfig]:
    """Flatten one config or a list of configs into one config per endpoint, checking they agree on the key."""
    configs = [config] if isinstance(config, TeacherConfig) else list(config)
    if not configs:
        raise ConfigError("at least one TeacherConfig is needed")
    flat = [e for c in configs for e in c.expand()]
    first = flat[0]
    for e in flat[1:]:
        if e.model != first.model or e.sampling() != first.sampling():
            raise ConfigError(
                "all endpoints of one run must share model and sampling settings (they key the store): "
                f"{first.base_url} has {first.model} {first.sampling()}, {e.base_url} has {e.model} {e.sampling()}"
            )
    return flat
