"""Batch API mode against the fake files/batches endpoints: split, submit, persist, poll, map, resume."""

from __future__ import annotations

import asyncio

import pytest

from generation_fakes import FakeOpenAI
from lamini_lm.generation import Store, TeacherConfig, achat_completions, chat_completions


def msgs(n: int) -> list[list[dict]]:
    return [[{"role": "user", "content": f"q{i}" + (" BATCH-ERROR" if i == 4 else "")}] for i in range(n)]


def cfg(url: str, **kw) -> TeacherConfig:
    base = {"model": "gpt-4o-mini", "batch_api": True, "batch_poll_interval": 0.02, "progress": False}
    return TeacherConfig(base_url=url, **{**base, **kw})


@pytest.mark.integration
def test_batch_files_are_split_results_mapped_and_stored(tmp_path):
    fake = FakeOpenAI(batch_polls=2)
    with fake as url:
        out = chat_completions(msgs(7), cfg(url, batch_max_requests=3), tmp_path / "s.sqlite")
        assert fake.batch_creates == 3  # 7 requests, at most 3 a file
        assert [r.text for r in out[:4]] == [f"Answer: q{i}" for i in range(4)]
        assert out[4].error.startswith("batch error") and out[5].ok and out[6].ok
        # half price: 0.15 / 0.60 USD per 1M tokens, halved
        u = out[0].usage
        assert out[0].cost_usd == pytest.approx((u.prompt_tokens * 0.15 + u.completion_tokens * 0.60) / 2e6)
        again = chat_completions(msgs(7), cfg(url, batch_max_requests=3), tmp_path / "s.sqlite")
        assert fake.batch_creates == 3 and [r.text for r in again] == [r.text for r in out]


@pytest.mark.integration
def test_byte_limit_splits_files(tmp_path):
    fake = FakeOpenAI()
    with fake as url:
        chat_completions(msgs(6), cfg(url, batch_max_bytes=400), tmp_path / "s.sqlite")
    assert fake.batch_creates >= 3
    assert all(
        len(f) <= 400 for fid, f in fake.files.items() if fid in {b["input_file_id"] for b in fake.batches.values()}
    )


@pytest.mark.integration
def test_polling_resumes_after_a_restart_without_resubmitting(tmp_path):
    store = tmp_path / "s.sqlite"
    fake = FakeOpenAI(batch_polls=10_000)  # never finishes while the first run polls
    with fake as url:

        async def first_run():
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(achat_completions(msgs(5), cfg(url), store), timeout=1.0)

        asyncio.run(first_run())
        assert fake.batch_creates == 1
        with Store(store) as st:
            (open_batch,) = st.open_batches()
            assert len(open_batch["keys"]) == 5 and len(st) == 0
        fake.batch_polls = 1  # the batch completes now
        out = chat_completions(msgs(5), cfg(url), store)
    assert fake.batch_creates == 1  # polled the stored batch, did not pay again
    assert sum(r.ok for r in out) == 4
    with Store(store) as st:
        assert st.open_batches() == [] and len(st) == 5


@pytest.mark.integration
def test_the_responses_stage_takes_the_batch_api_and_gives_the_rows_of_the_python_api(tmp_path):
    import json
    import subprocess
    import sys

    import datasets

    from lamini_lm.artifacts import read_manifest
    from lamini_lm.generation import generate_responses

    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"instruction": f"q{i}"}) + "\n" for i in [0, 1, 2, 0, 3]))
    fake = FakeOpenAI()
    with fake as url:
        cmd = [sys.executable, "-m", "lamini_lm.cli", "generate", "responses", "--input", str(inp), "--output",
               str(tmp_path / "out"), "--store", str(tmp_path / "a.sqlite"), "--chunk_rows", "2", "--base_url", url,
               "--model", "gpt-4o-mini", "--batch_api", "--batch_poll_interval", "0.02", "--no_progress"]  # fmt: skip
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-2000:]
        assert fake.batch_creates == 3  # chunk after chunk; q0's second ask is answered by the store
        api, report = generate_responses(str(inp), config=cfg(url), store=tmp_path / "b.sqlite", return_report=True)
    stage = datasets.load_from_disk(str(tmp_path / "out"))
    assert stage.features == api.features and stage.to_list() == api.to_list()
    assert stage["response"] == [f"Answer: q{i}" for i in [0, 1, 2, 0, 3]]
    details = read_manifest(tmp_path / "out").report("responses").details
    assert details == report.details and (details["requests"], details["to_send"], details["from_cache"]) == (4, 4, 0)
