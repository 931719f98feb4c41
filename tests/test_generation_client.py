"""The teacher client: retries, Retry-After, slots, context-length errors, budget, endpoints, the store."""

from __future__ import annotations

import time

import pytest

from generation_fakes import FakeOpenAI
from lamini_lm.errors import UsageError
from lamini_lm.generation import Store, TeacherConfig, chat_completions, estimate, request_key
from lamini_lm.records import Response


def msgs(n: int, prefix: str = "q") -> list[list[dict]]:
    return [[{"role": "user", "content": f"{prefix}{i}"}] for i in range(n)]


def cfg(url: str, **kw) -> TeacherConfig:
    base = {"model": "fake", "timeout": 1.0, "backoff_base": 0.02, "backoff_max": 0.2, "progress": False}
    return TeacherConfig(base_url=url, **{**base, **kw})


@pytest.mark.integration
def test_real_server_answers_and_caches(teacher_server, tmp_path):
    store = tmp_path / "t.sqlite"
    config = TeacherConfig(base_url=teacher_server.base_url, model=teacher_server.model, max_tokens=8, progress=False)
    messages = msgs(3, "Name a colour ")
    first = chat_completions(messages, config, store)
    assert len(first) == 3 and all(r.ok for r in first), [r.error for r in first]
    assert all(r.usage.completion_tokens > 0 for r in first)
    # a dead endpoint: everything must come from the store, nothing is sent
    dead = TeacherConfig(base_url="http://127.0.0.1:9/v1", model=teacher_server.model, max_tokens=8, max_retries=0)
    again = chat_completions(messages, dead, store)
    assert [r.text for r in again] == [r.text for r in first]


@pytest.mark.integration
def test_faults_are_retried_and_rows_never_none(tmp_path):
    fake = FakeOpenAI(script=["429", "500", "garbage", "empty", "slow"], slow_seconds=1.5)
    with fake as url:
        out = chat_completions(msgs(12), cfg(url, concurrency=3), tmp_path / "s.sqlite")
    assert [r.text for r in out] == [f"Answer: q{i}" for i in range(12)]
    assert len(fake.requests) == 12 + 5  # one extra attempt per injected fault
    with Store(tmp_path / "s.sqlite") as st:
        assert len(st) == 12


@pytest.mark.integration
def test_retry_after_is_honoured_without_holding_the_slot(tmp_path):
    fake = FakeOpenAI(script=["429"], retry_after=0.6)
    with fake as url:
        t0 = time.monotonic()
        out = chat_completions(msgs(3), cfg(url, concurrency=1, backoff_max=5), tmp_path / "s.sqlite")
        elapsed = time.monotonic() - t0
    assert all(r.ok for r in out)
    assert elapsed >= 0.6
    # the single slot served q1 and q2 while q0 waited out its Retry-After
    assert fake.requests == ["q0", "q1", "q2", "q0"]


@pytest.mark.integration
def test_exhausted_retries_are_failure_rows_retried_next_run(tmp_path):
    store = tmp_path / "s.sqlite"
    with FakeOpenAI(script=["500"] * 3) as url:
        out = chat_completions(msgs(1), cfg(url, max_retries=2), store)
        assert out[0].error.startswith("HTTP 500") and "after 3 attempts" in out[0].error
        again = chat_completions(msgs(2), cfg(url, max_retries=2), store)
    assert [r.text for r in again] == ["Answer: q0", "Answer: q1"]


@pytest.mark.integration
def test_a_bad_key_stops_the_run_instead_of_failing_every_row(tmp_path):
    fake = FakeOpenAI(script=["401"] * 3)
    with fake as url:
        out = chat_completions(msgs(50), cfg(url, concurrency=1), tmp_path / "s.sqlite")
        assert len(fake.requests) == 1 and out[0].error.startswith("HTTP 401")
        assert all(r.error.startswith("run stopped: HTTP 401") for r in out[1:])
        with Store(tmp_path / "s.sqlite") as st:
            assert len(st) == 0  # nothing stored: fix the key and re-run


@pytest.mark.integration
def test_context_length_shrinks_max_tokens_or_records_failure(tmp_path):
    store = tmp_path / "s.sqlite"
    long_prompt = [[{"role": "user", "content": "x" * 2000}]]
    fake = FakeOpenAI(context_length=100)
    with fake as url:
        ok = chat_completions(msgs(1), cfg(url, max_tokens=500), store)
        assert ok[0].ok and fake.statuses == [400, 200]
        bad = chat_completions(long_prompt, cfg(url, max_tokens=500), store)
        assert "context" in bad[0].error
        sent = len(fake.requests)
        # a permanent failure is stored: a re-run does not pay for it again
        assert chat_completions(long_prompt, cfg(url, max_tokens=500), store)[0].error == bad[0].error
        assert len(fake.requests) == sent


@pytest.mark.integration
def test_budget_stops_before_exceeding(tmp_path):
    store = tmp_path / "s.sqlite"
    # 1000 USD per 1M tokens: each request reserves (~5 prompt + 100 max) tokens, ~0.1 USD
    prices = "fake=1000,1000"
    fake = FakeOpenAI()
    with fake as url:
        out = chat_completions(msgs(20), cfg(url, max_tokens=100, budget_usd=0.5, prices=prices), store)
        answered = [r for r in out if r.ok]
        assert 0 < len(answered) < 20 and len(fake.requests) == len(answered)
        assert sum(r.cost_usd for r in answered) <= 0.5
        assert all("budget" in r.error for r in out if not r.ok)
        rest = chat_completions(msgs(20), cfg(url, max_tokens=100, prices=prices), store)
    assert all(r.ok for r in rest) and len(fake.requests) == 20


@pytest.mark.integration
def test_dry_run_estimate_counts_only_missing(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    with FakeOpenAI() as url:
        config = cfg(url, max_tokens=100, prices="fake=1,2")
        chat_completions(msgs(4), config, store)
        est = estimate(msgs(10), config, store)
        assert (est.requests, est.cached) == (6, 4)
        assert est.completion_tokens_max == 600
        assert est.cost_usd_max == pytest.approx((est.prompt_tokens * 1 + 600 * 2) / 1e6)
        out = chat_completions(msgs(10), config, store, dry_run=True)
    assert "6 requests to send" in capsys.readouterr().out
    assert [r.ok for r in out] == [True] * 4 + [False] * 6


@pytest.mark.integration
def test_several_endpoints_share_one_run(tmp_path):
    a, b = FakeOpenAI(latency=0.02), FakeOpenAI(latency=0.02)
    with a as url_a, b as url_b:
        out = chat_completions(msgs(40), cfg(f"{url_a},{url_b}", concurrency=2), tmp_path / "s.sqlite")
    assert all(r.ok for r in out)
    assert len(a.requests) + len(b.requests) == 40 and a.requests and b.requests


@pytest.mark.integration
def test_rpm_limit_spaces_requests(tmp_path):
    with FakeOpenAI() as url:
        t0 = time.monotonic()
        chat_completions(msgs(12), cfg(url, rpm=60), tmp_path / "s.sqlite")  # burst of 10, then 1 per second
    assert time.monotonic() - t0 >= 1.5


def test_request_key_changes_with_what_is_asked():
    m = [{"role": "user", "content": "hi"}]
    base = request_key("m", m, {"temperature": 1.0}, "v1")
    assert base == request_key("m", [dict(m[0])], {"temperature": 1.0}, "v1")
    assert base != request_key("m2", m, {"temperature": 1.0}, "v1")
    assert base != request_key("m", m, {"temperature": 0.5}, "v1")
    assert base != request_key("m", m, {"temperature": 1.0}, "v2")
    assert base != request_key("m", [{"role": "user", "content": "hi!"}], {"temperature": 1.0}, "v1")


def test_python_yaml_and_flags_ask_the_same_request_for_the_same_settings(tmp_path):
    """TeacherConfig(temperature=0) must find in the store what `--temperature 0` (or YAML's 0) paid for."""
    from lamini_lm.config import parse_config

    yaml_file = tmp_path / "teacher.yaml"
    yaml_file.write_text("model: m\ntemperature: 0\ntop_p: 1\n")
    (from_yaml,) = parse_config([TeacherConfig], [str(yaml_file)])
    (from_flags,) = parse_config([TeacherConfig], ["--model", "m", "--temperature", "0", "--top_p", "1"])
    m = [{"role": "user", "content": "hi"}]
    keys = {request_key("m", m, c.sampling(), "v1") for c in (TeacherConfig(model="m", temperature=0, top_p=1),
                                                              from_yaml, from_flags)}  # fmt: skip
    assert len(keys) == 1


def test_endpoints_must_agree_on_model(tmp_path):
    with pytest.raises(ValueError, match="share model"):
        chat_completions(msgs(1), [cfg("http://a/v1"), cfg("http://b/v1", model="other")], tmp_path / "s.sqlite")


def test_teacher_config_reads_flags_and_yaml(tmp_path):
    from lamini_lm.config import parse_config

    yaml_file = tmp_path / "teacher.yaml"
    yaml_file.write_text("model: gpt-4o-mini\nconcurrency: 8\n")
    (c,) = parse_config([TeacherConfig], [str(yaml_file), "--base-url", "http://h/v1", "--budget", "3", "--batch-api"])
    assert (c.model, c.concurrency, c.base_url, c.budget_usd, c.batch_api) == (
        "gpt-4o-mini",
        8,
        "http://h/v1",
        3.0,
        True,
    )
    endpoints = tmp_path / "endpoints.yaml"
    endpoints.write_text("- {base_url: 'http://b/v1', rpm: 10, api_key_env: KEY_B}\n")
    flat = TeacherConfig(base_url="http://a/v1,http://c/v1", endpoints=str(endpoints)).expand()
    assert [(e.base_url, e.rpm) for e in flat] == [("http://a/v1", 0), ("http://c/v1", 0), ("http://b/v1", 10)]
    with pytest.raises(ValueError, match="concurrency"):
        TeacherConfig(concurrency=0)


def test_openai_needs_a_key_but_local_servers_do_not():
    with pytest.raises(UsageError, match="OPENAI_API_KEY"):
        TeacherConfig().api_key()
    assert TeacherConfig(base_url="http://127.0.0.1:8000/v1").api_key() == "EMPTY"


@pytest.mark.integration
def test_sync_api_works_inside_a_running_event_loop(tmp_path):
    import asyncio

    async def notebook_cell(url):
        return chat_completions(msgs(2), cfg(url), tmp_path / "s.sqlite")  # as called from Jupyter

    with FakeOpenAI() as url:
        out = asyncio.run(notebook_cell(url))
    assert [r.text for r in out] == ["Answer: q0", "Answer: q1"]
    with Store(tmp_path / "s.sqlite") as st:
        assert st.spent_usd() == 0.0 and len(st) == 2


@pytest.mark.integration
def test_progress_bar_shows_done_total_rate_tokens_and_dollars(tmp_path, capsys):
    with FakeOpenAI() as url:
        chat_completions(msgs(3), cfg(url, progress=True, prices="fake=1,1"), tmp_path / "s.sqlite", desc="demo")
    err = capsys.readouterr().err
    assert "demo" in err and "3/3" in err and "req/s" in err and "tok=" in err and "$0.0000" in err


def test_claims_keep_two_runs_on_one_store_from_sending_the_same_key(tmp_path):
    path = tmp_path / "store.sqlite"
    with Store(path) as first, Store(path) as second:
        assert first.claim(["a", "b"]) == {"a", "b"}
        assert second.claim(["a", "b", "c"]) == {"c"}  # a and b belong to a live process (this one)
        assert second.claimed_by_others(["a", "b", "c"]) == {k: f"{first.host}:{first.pid}" for k in "ab"}
        first.put("a", Response("done"))
        first.release()
        assert second.claim(["a", "b"]) == {"b"}  # "a" is answered: never claimed again
    with Store(path) as third:  # closing released every claim
        assert third.claimed_by_others(["a", "b", "c"]) == {}


def test_claims_of_a_dead_process_are_taken_over(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "store.sqlite"
    script = f"import os; from lamini_lm.generation import Store; Store({str(path)!r}).claim(['x', 'y']); os._exit(0)"
    subprocess.run([sys.executable, "-c", script], check=True)  # exits without releasing, as a kill -9 would
    with Store(path) as store:
        assert store.claimed_by_others(["x", "y"])  # still recorded...
        assert store.claim(["x", "y"]) == {"x", "y"}  # ...but its process is gone, so they are free


@pytest.mark.integration
def test_keys_taken_over_from_another_run_share_this_calls_budget(tmp_path, monkeypatch):
    import threading

    from lamini_lm.generation import request_keys, runner

    monkeypatch.setattr(runner, "CLAIM_POLL_SECONDS", 0.05)
    store = tmp_path / "s.sqlite"
    # the fake answers "Answer: " + the last 80 characters: 88 characters, 23 completion tokens; with input free
    # and max_tokens 23, a request's reserved worst case is exactly its cost, 0.023 USD
    messages = [[{"role": "user", "content": f"{i:02d} " + "x" * 90}] for i in range(10)]
    budget = 7.5 * 0.023
    with FakeOpenAI() as url:
        config = cfg(url, max_tokens=23, budget_usd=budget, prices="fake=0,1000")
        other = Store(store)  # another run holds half the keys...
        assert len(other.claim(request_keys(messages[5:], config))) == 5
        box = {}
        call = threading.Thread(target=lambda: box.update(out=chat_completions(messages, config, store)))
        call.start()
        deadline = time.monotonic() + 30
        while len(other) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        other.close()  # ...and ends without answering them: this call takes them over
        call.join(30)
    answered = [r for r in box["out"] if r.ok]
    assert len(answered) == 7 and sum(r.cost_usd for r in answered) <= budget  # not 5 + a fresh budget's 5
    assert all("budget" in r.error for r in box["out"] if not r.ok)
