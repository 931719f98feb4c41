"""The test kit every stage reuses.

* Autouse isolation: HF caches under a temp dir, Hub offline, no token, no OpenAI key, quiet progress bars.
* ``tiny_tokenizer``, ``tiny_gpt2``, ``tiny_t5``: tiny models from config (tens of thousands of parameters) with a
  tokenizer trained on the fly and a chat template, saved once per session to a temp dir. Treat them as
  read-only; copy (``shutil.copytree``) before training in place.
* ``teacher_server``: a real OpenAI-compatible server (``transformers serve`` on the tiny GPT-2) on 127.0.0.1;
  yields a :class:`Teacher` with ``base_url`` and ``model``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolate_hf(tmp_path_factory, monkeypatch):
    """Every test gets private caches and no credentials, and never reaches a hub."""
    cache = tmp_path_factory.mktemp("hf_cache")
    monkeypatch.setenv("HF_HOME", str(cache))
    monkeypatch.setenv("LAMINI_LM_CACHE", str(cache / "lamini_lm"))  # the teacher cache, private to each test
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache / "datasets"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    # datasets reads its cache location at import time: point its config at the private cache too.
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", Path(cache / "datasets"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    datasets.disable_progress_bars()
    yield


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny_models")


@pytest.fixture(scope="session")
def tiny_tokenizer(models_dir):
    from lamini_lm.testing import build_tiny_tokenizer

    return build_tiny_tokenizer(models_dir / "tokenizer")


@pytest.fixture(scope="session")
def tiny_gpt2(models_dir, tiny_tokenizer) -> Path:
    """Path of a saved tiny GPT-2 with its tokenizer and chat template."""
    from lamini_lm.testing import build_tiny_gpt2

    return build_tiny_gpt2(models_dir / "gpt2", tokenizer=tiny_tokenizer)


@pytest.fixture(scope="session")
def tiny_t5(models_dir, tiny_tokenizer) -> Path:
    """Path of a saved tiny T5 with its tokenizer."""
    from lamini_lm.testing import build_tiny_t5

    return build_tiny_t5(models_dir / "t5", tokenizer=tiny_tokenizer)


@dataclasses.dataclass(frozen=True)
class Teacher:
    base_url: str
    model: str
    log_path: Path


@pytest.fixture(scope="session")
def teacher_server(tiny_gpt2, tmp_path_factory):
    """A real `transformers serve` on the tiny GPT-2 at 127.0.0.1, for the whole session."""
    from lamini_lm.testing import serve_teacher

    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    with serve_teacher(tiny_gpt2, log_path=str(log_path)) as base_url:
        yield Teacher(base_url=base_url, model=str(tiny_gpt2), log_path=log_path)


@dataclasses.dataclass(frozen=True)
class HubClient:
    """What a test needs to talk to the fake hub: the running app, its endpoint, the token, a subprocess env."""

    hub: object  # tests/fakehub.py FakeHub: .files(repo_id), .commits(repo_id), .repos, .requests
    endpoint: str
    token: str
    env: dict  # os.environ for a subprocess that should use the fake hub


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """A Hub-compatible app on 127.0.0.1 (tests/fakehub.py) that this test's huggingface_hub, datasets and
    transformers talk to: HF_ENDPOINT points at it, Xet is off, HF_TOKEN is a dummy token, offline mode is off.

    huggingface_hub and datasets read these settings at import time, so their module constants are patched too.
    """
    import datasets
    from huggingface_hub import constants, hf_api

    from fakehub import FakeHub

    token = "hf_fake_token_for_tests_0123456789"
    with FakeHub() as hub:
        endpoint = hub.endpoint
        env = {
            "HF_ENDPOINT": endpoint,
            "HF_HUB_DISABLE_XET": "1",
            "HF_TOKEN": token,
            "HF_HUB_DISABLE_IMPLICIT_TOKEN": "0",
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        )
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", False)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
        monkeypatch.setattr(hf_api.api, "endpoint", endpoint)
        # transformers keeps one HfApi built on first use: rebuild it against this endpoint.
        monkeypatch.setattr("transformers.utils.hub._hf_api", None)
        monkeypatch.setattr(datasets.config, "HF_ENDPOINT", endpoint)
        monkeypatch.setattr(
            datasets.config, "HUB_DATASETS_URL", endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}"
        )
        monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False, raising=False)
        sub_env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
        yield HubClient(hub=hub, endpoint=endpoint, token=token, env={**sub_env, **env})
