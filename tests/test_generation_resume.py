"""The CLI end to end, and the exactly-once promise: a SIGKILLed run resumes without losing or re-buying rows."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest

from generation_fakes import FakeOpenAI
from lamini_lm.generation import default_store_path, request_keys, response_messages
from lamini_lm.generation.cli import main
from lamini_lm.prompts import SYSTEM_MESSAGE, prompt_hash
from lamini_lm.records import generation_features


def committed_rows(store) -> int:
    """Answers committed so far by another process (0 while the store does not exist yet)."""
    if not store.exists():
        return 0
    try:
        with sqlite3.connect(store) as db:
            return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.OperationalError:  # created but its tables not yet
        return 0


def responses_cmd(inp, out, url, *flags):
    """``lamini-lm generate responses`` in a fresh interpreter, as a user runs it."""
    base = [sys.executable, "-m", "lamini_lm.cli", "generate", "responses", "--input", str(inp), "--output", str(out)]
    return [*base, "--base_url", url, "--model", "fake", *flags]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.integration
def test_cli_instructions_then_responses(tmp_path, capsys):
    seeds = write_jsonl(tmp_path / "seeds.jsonl", [{"instruction": f"Seed task number {i}."} for i in range(5)])
    with FakeOpenAI() as url:
        common = ["--base-url", url, "--model", "fake", "--concurrency", "4", "--no_progress"]
        assert (
            main(
                [
                    "instructions",
                    "--seeds",
                    str(seeds),
                    "--num_prompts",
                    "2",
                    "--output",
                    str(tmp_path / "ins"),
                    *common,
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "responses",
                    "--input",
                    str(tmp_path / "ins"),
                    "--output",
                    str(tmp_path / "res"),
                    "--dry-run",
                    *common,
                ]
            )
            == 0
        )
        assert "40 requests to send" in capsys.readouterr().out and not (tmp_path / "res").exists()
        assert main(["responses", "--input", str(tmp_path / "ins"), "--output", str(tmp_path / "res"), *common]) == 0
    ins = datasets.load_from_disk(str(tmp_path / "ins"))
    res = datasets.load_from_disk(str(tmp_path / "res"))
    assert len(ins) == 40 and res.features == generation_features()
    assert res["instruction"] == ins["instruction"] and all(r.startswith("Answer: ") for r in res["response"])
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]  # the atomic write left nothing behind
    again = FakeOpenAI()
    with again as url:  # the same command again replaces its own output, from the cache alone
        common = ["--base-url", url, "--model", "fake", "--no_progress"]
        assert main(["responses", "--input", str(tmp_path / "ins"), "--output", str(tmp_path / "res"), *common]) == 0
    assert again.requests == [] and datasets.load_from_disk(str(tmp_path / "res"))["response"] == res["response"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")  # a folder of the user's: refused, before any request
    with pytest.raises(FileExistsError, match="notes.txt"):
        main(["responses", "--input", str(tmp_path / "ins"), "--output", str(tmp_path / "mine"), *common])
    assert os.listdir(tmp_path / "mine") == ["notes.txt"]


@pytest.mark.integration
def test_sigkill_mid_run_then_resume_sends_only_what_is_missing(tmp_path):
    n = 160
    rows = [{"instruction": f"Instruction {i}: say something.", "instruction_source": "alpaca"} for i in range(n)]
    inp = write_jsonl(tmp_path / "in.jsonl", rows)
    out, store = tmp_path / "out", Path(default_store_path())
    fake = FakeOpenAI(latency=0.05, p429=0.05, retry_after=0.05, seed=1)
    with fake as url:
        cmd = responses_cmd(inp, out, url, "--concurrency", "4", "--no_progress")
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        committed = 0
        while committed < 40 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            committed = committed_rows(store)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert 40 <= committed < n, f"the run should have been killed mid-way (committed {committed})"
        with sqlite3.connect(store) as db:
            done_keys = {k for (k,) in db.execute("SELECT key FROM responses")}
        sent_before = len(fake.requests)
        assert not out.exists()

        assert subprocess.run(cmd, capture_output=True, timeout=120).returncode == 0
    resent = fake.requests[sent_before:]
    keys = request_keys([response_messages(r["instruction"]) for r in rows], _cfg(url), prompt_version=_v())
    key_of = {r["instruction"]: k for r, k in zip(rows, keys)}
    assert not [t for t in resent if key_of[t] in done_keys], "a committed answer was requested again"
    assert set(resent) == {r["instruction"] for r in rows if key_of[r["instruction"]] not in done_keys}
    ds = datasets.load_from_disk(str(out))
    assert len(ds) == n and all(e is None for e in ds["error"])
    assert ds["response"] == [f"Answer: {r['instruction']}" for r in rows]


@pytest.mark.integration
def test_sigterm_ends_cleanly_with_answers_committed(tmp_path):
    inp = write_jsonl(tmp_path / "in.jsonl", [{"instruction": f"Task {i}."} for i in range(400)])
    out, store = tmp_path / "out", Path(default_store_path())
    with FakeOpenAI(latency=0.05) as url:
        cmd = responses_cmd(inp, out, url, "--concurrency", "2", "--budget", "10")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + 60
        while committed_rows(store) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "run the same command again" in stdout
    assert 5 <= committed_rows(store) < 400
    assert not out.exists()


def _cfg(url):
    from lamini_lm.generation import TeacherConfig

    return TeacherConfig(base_url=url, model="fake")


def _v():
    return prompt_hash(SYSTEM_MESSAGE)


@pytest.mark.integration
def test_two_runs_on_one_store_at_once_pay_each_request_once(tmp_path):
    n = 120
    inp = write_jsonl(tmp_path / "in.jsonl", [{"instruction": f"Shared task {i}."} for i in range(n)])
    store = tmp_path / "shared.sqlite"
    fake = FakeOpenAI(latency=0.2)
    with fake as url:

        def cmd(out):
            flags = ["--store", str(store), "--concurrency", "4", "--no_progress"]
            return responses_cmd(inp, tmp_path / out, url, *flags)

        # started together: one claims every key, the other waits for its answers (each run takes ~6 s at the
        # server, far longer than the gap between the two start-ups)
        procs = [subprocess.Popen(cmd(o), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for o in "ab"]
        errs = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], errs
    assert sum("being answered by another process" in e for e in errs) == 1, errs
    assert sorted(fake.requests) == sorted(f"Shared task {i}." for i in range(n)), "a request was sent twice"
    a, b = (datasets.load_from_disk(str(tmp_path / o)) for o in "ab")
    assert a["response"] == b["response"] == [f"Answer: Shared task {i}." for i in range(n)]
