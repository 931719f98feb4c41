"""``lamini-lm generate dialogues``: a user simulator and the teacher alternate; every turn is a keyed request in the
exactly-once store, so a SIGKILL mid-dialogue resumes paying only what was in flight. Real processes against the
fault server and the real tiny teacher."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest

from generation_fakes import FakeOpenAI
from lamini_lm.artifacts import read_manifest
from lamini_lm.config import ConfigError
from lamini_lm.generation import DialogueArgs, OutputArgs, TeacherConfig, default_store_path, run_generate_dialogues
from lamini_lm.generation.dialogues import parse_turns, simulator_messages, teacher_messages
from lamini_lm.generation.store import request_key
from lamini_lm.prompts import (
    PROMPT_HASHES,
    SYSTEM_MESSAGE,
    USER_SIMULATOR_PROMPT,
    USER_SIMULATOR_VERSION,
    USER_STOP_MARKER,
    prompt_hash,
)
from lamini_lm.records import dialogue_features


def cli(*args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lamini_lm.cli", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def instructions(tmp_path, n, name="in.jsonl", extra=lambda i: "") -> Path:
    return write_jsonl(tmp_path / name, [{"instruction": f"Task {i}: say something.{extra(i)}"} for i in range(n)])


def teacher(url, *extra):
    return ["--base_url", url, "--model", "fake", "--no_progress", "--backoff_base", "0.01", *extra]


def key_of(body: dict) -> str:
    """The store key of a request the fault server received (what the run computed before sending it)."""
    messages = body["messages"]
    user = messages[0]["content"] == USER_SIMULATOR_PROMPT
    version = USER_SIMULATOR_VERSION if user else prompt_hash(SYSTEM_MESSAGE)
    sampling = {"max_tokens": body["max_tokens"], "temperature": body["temperature"], "top_p": body["top_p"]}
    return request_key(body["model"], messages, sampling, version)


def store_keys(store) -> set[str]:
    if not Path(store).exists():
        return set()
    try:
        with sqlite3.connect(store) as db:
            return {k for (k,) in db.execute("SELECT key FROM responses")}
    except sqlite3.OperationalError:
        return set()


def test_turns_are_parsed_and_bad_settings_refused():
    assert parse_turns("3") == (3, 3) and parse_turns("2-5") == (2, 5) and parse_turns(4) == (4, 4)
    for bad in ("0", "5-2", "x", "2-99"):
        with pytest.raises(ConfigError, match="--turns"):
            DialogueArgs(input="x.jsonl", turns=bad)
    with pytest.raises(ConfigError, match="input"):
        DialogueArgs()
    with pytest.raises(ConfigError, match="user_max_tokens"):
        DialogueArgs(input="x.jsonl", user_max_tokens=0)


def test_the_simulator_sees_the_dialogue_from_the_users_side():
    dialogue = [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}]
    assert teacher_messages(dialogue) == [{"role": "system", "content": SYSTEM_MESSAGE}, *dialogue]
    sim = simulator_messages(dialogue)
    assert sim[0] == {"role": "system", "content": USER_SIMULATOR_PROMPT}
    assert [m["role"] for m in sim[1:]] == ["user", "assistant", "user"]  # alternates, starting with user
    assert [m["content"] for m in sim[2:]] == ["Q1", "A1"]


@pytest.mark.integration
def test_dialogues_end_to_end_with_dry_run_stop_marker_and_cache(tmp_path):
    # row 0's teacher answer echoes the stop marker, so the simulator (an echo too) ends that dialogue after one turn
    inp = instructions(tmp_path, 8, extra=lambda i: f" {USER_STOP_MARKER}" if i == 0 else "")
    out = tmp_path / "out"
    fake = FakeOpenAI()
    fake.record_bodies = True
    with fake as url:
        dry = cli("generate", "dialogues", "--input", inp, "--output", out, "--turns", "3", "--dry_run", *teacher(url))
        assert dry.returncode == 0, dry.stderr
        # 8 dialogues x (2 x 3 turns - 1): the first user turn is the instruction itself
        assert "40 requests to send" in dry.stdout and "teacher fake 24 requests" in dry.stdout, dry.stdout
        assert fake.requests == [] and not out.exists()
        # the first turn is exactly a `generate responses` request: answered there, it is not paid again here
        assert cli("generate", "responses", "--input", inp, "--output", tmp_path / "r", *teacher(url)).returncode == 0
        assert len(fake.requests) == 8
        p = cli("generate", "dialogues", "--input", inp, "--output", out, "--turns", "3", *teacher(url))
        assert p.returncode == 0, p.stderr
        assert "8 complete" in p.stdout and "user_stop 1" in p.stdout and "8 turns came from the cache" in p.stdout
        assert len(fake.requests) == 8 + 1 + 7 * 4  # row 0: one user turn (the stop); the others: 2 user + 2 teacher
        again = cli("generate", "dialogues", "--input", inp, "--output", out, "--turns", "3", *teacher(url))
        assert again.returncode == 0 and len(fake.requests) == 37  # everything from the cache
        keys = [key_of(b) for b in fake.bodies]
        assert len(set(keys)) == len(keys), "a turn was paid twice"
    ds = datasets.load_from_disk(str(out))
    assert ds.features == dialogue_features() and len(ds) == 8
    assert ds[0]["turns"] == 1 and ds[0]["end_reason"] == "user_stop" and ds[0]["complete"]
    for row in ds.select(range(1, 8)):
        assert row["turns"] == 3 and row["complete"] and row["end_reason"] == "max_turns" and row["error"] is None
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["user", "assistant"] * 3
        assert row["messages"][0]["content"] == row["instruction"]
        assert row["messages"][1]["content"] == row["response"] == f"Answer: {row['instruction']}"
        for prev, cur in zip(row["messages"], row["messages"][1:]):  # each turn answers the one before it
            assert cur["content"] == "Answer: " + prev["content"][-80:]
        assert row["user_prompt_version"] == USER_SIMULATOR_VERSION and row["user_model"] == "fake"
    m = read_manifest(out)
    assert m.stage == "generate_dialogues" and m.rows == 8 and m.extra["complete"] == 8
    assert m.prompt_hashes == {
        "system_message": PROMPT_HASHES["system_message"],
        "user_simulator": USER_SIMULATOR_VERSION,
    }
    assert m.config["dialogues"]["turns"] == "3" and m.config["user"][0]["max_tokens"] == 256
    steps = m.reports[0]["details"]["steps"]
    assert [s["role"] for s in steps] == ["assistant", "user"] * 2 + ["assistant"]
    assert [s["requests"] for s in steps] == [8, 8, 7, 7, 7] and sum(s["sent"] for s in steps) == 0


@pytest.mark.integration
def test_a_failed_turn_ends_its_dialogue_which_is_never_presented_as_complete(tmp_path):
    inp = instructions(tmp_path, 4)
    out = tmp_path / "out"
    # the teacher's first answers fit the context; the simulator's long prompt does not: every user turn fails
    with FakeOpenAI(context_length=120) as url:
        flags = teacher(url, "--max_tokens", "16", "--min_max_tokens", "16", "--user_max_tokens", "16")
        p = cli("generate", "dialogues", "--input", inp, "--output", out, "--turns", "3", *flags)
    assert p.returncode == 1, p.stderr
    assert "4 of 8 requests failed" in p.stderr and "prompt too long" in p.stderr
    ds = datasets.load_from_disk(str(out))  # written anyway, each row saying what happened
    assert not any(ds["complete"]) and set(ds["end_reason"]) == {"error"} and ds["turns"] == [1] * 4
    assert all("context" in e for e in ds["error"])
    assert [[m["role"] for m in msgs] for msgs in ds["messages"]] == [["user", "assistant"]] * 4


@pytest.mark.integration
def test_budget_stops_between_turns_and_a_rerun_continues(tmp_path):
    inp = instructions(tmp_path, 4)
    out = tmp_path / "out"
    fake = FakeOpenAI()
    with fake as url:
        flags = teacher(url, "--prices", "fake=2000,2000", "--max_tokens", "32", "--user_max_tokens", "32")
        # each request reserves its worst case (~$0.3 for the teacher, ~$1.6 for the long simulator prompt)
        p = cli("generate", "dialogues", "--input", inp, "--output", out, "--turns", "2", "--budget", "1.5", *flags)
        assert p.returncode == 0, p.stderr
        assert "budget reached" in p.stdout
        ds = datasets.load_from_disk(str(out))
        assert not all(ds["complete"]) and "not_sent" in ds["end_reason"]
        assert all(r["turns"] >= 1 for r in ds)
        first = len(fake.requests)
        assert read_manifest(out).cost_usd <= 1.5
        p = cli("generate", "dialogues", "--input", inp, "--output", out, "--turns", "2", "--budget", "100", *flags)
        assert p.returncode == 0, p.stderr
    ds = datasets.load_from_disk(str(out))
    assert all(ds["complete"]) and ds["turns"] == [2] * 4
    assert len(fake.requests) == 4 * 3 and first < 12  # nothing paid twice


@pytest.mark.integration
def test_batch_api_sends_one_batch_per_round(tmp_path):
    inp = instructions(tmp_path, 5)
    fake = FakeOpenAI(batch_polls=1)
    with fake as url:
        p = cli(
            "generate", "dialogues", "--input", inp, "--output", tmp_path / "out", "--turns", "2",
            *teacher(url, "--batch_api", "--batch_poll_interval", "0.05"),
        )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert fake.batch_creates == 3  # teacher, user, teacher
    assert all(datasets.load_from_disk(str(tmp_path / "out"))["complete"])


@pytest.mark.integration
def test_sigkill_mid_dialogue_resumes_paying_only_what_was_in_flight(tmp_path):
    n, concurrency = 40, 4
    inp = instructions(tmp_path, n)
    out, store = tmp_path / "out", default_store_path()
    # no 429s here: a request waiting on a retry was never paid, so every request sent before the kill and not
    # stored was in flight, and at most `concurrency` of them can be paid again
    fake = FakeOpenAI(latency=0.03)
    fake.record_bodies = True
    with fake as url:
        cmd = [sys.executable, "-m", "lamini_lm.cli", "generate", "dialogues", "--input", str(inp), "--output"]
        cmd += [str(out), "--turns", "3", "--concurrency", str(concurrency), *teacher(url)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 90
        while len(store_keys(store)) < 70 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        done = store_keys(store)
        assert 70 <= len(done) < n * 5, f"the run should have been killed mid-dialogue ({len(done)} turns stored)"
        assert not out.exists()
        sent_before = [key_of(b) for b in fake.bodies if b]
        statuses_before = len(fake.bodies)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        assert p.returncode == 0, p.stderr
    resent = [key_of(b) for b in fake.bodies[statuses_before:]]
    assert not set(resent) & done, "a stored turn was requested again"
    in_flight = set(resent) & set(sent_before)  # sent before the kill, not committed: paid again
    assert len(in_flight) <= concurrency, in_flight
    assert set(resent) | done == store_keys(store) and len(store_keys(store)) == n * 5
    ds = datasets.load_from_disk(str(out))
    assert all(ds["complete"]) and ds["turns"] == [3] * n
    for row in ds:
        for prev, cur in zip(row["messages"], row["messages"][1:]):
            assert cur["content"] == "Answer: " + prev["content"][-80:]


@pytest.mark.integration
def test_dialogues_interleave_a_slow_dialogue_holds_back_no_other(tmp_path):
    # dialogue 0's every request takes 1 s; the others answer at once. Played round by round, every dialogue's
    # second request would wait for dialogue 0's first answer, however short the delay; played as sequences, the
    # three others finish all five of their (instant) requests before dialogue 0's second one is sent. (It was
    # 3 s: 15 s of sleeping for the same check.)
    rows = [{"instruction": f"Task {i}{' SLOW' if i == 0 else ''}"} for i in range(4)]
    inp = write_jsonl(tmp_path / "in.jsonl", rows)
    fake = FakeOpenAI(slow_if="SLOW", slow_seconds=1.0)
    with fake as url:
        p = cli("generate", "dialogues", "--input", inp, "--output", tmp_path / "out", "--turns", "3", *teacher(url))
    assert p.returncode == 0, p.stderr
    slow = [i for i, r in enumerate(fake.requests) if "SLOW" in r]
    fast = [i for i, r in enumerate(fake.requests) if "SLOW" not in r]
    assert len(slow) == 5 and len(fast) == 15
    assert max(fast) < slow[1], fake.requests
    ds = datasets.load_from_disk(str(tmp_path / "out"))
    assert all(ds["complete"]) and ds["turns"] == [3] * 4
    steps = read_manifest(tmp_path / "out").reports[0]["details"]["steps"]
    assert [(s["requests"], s["sent"]) for s in steps] == [(4, 4)] * 5


def test_run_function_takes_the_dataclasses(tmp_path):
    with FakeOpenAI() as url:
        ds, manifest = run_generate_dialogues(
            DialogueArgs(input=str(instructions(tmp_path, 3)), turns="2"),
            OutputArgs(output=str(tmp_path / "out"), store=str(tmp_path / "s.sqlite")),
            TeacherConfig(base_url=url, model="fake", progress=False),
        )
    assert ds["turns"] == [2, 2, 2] and manifest.report("dialogues").summary() == "dialogues: 3 rows in, 3 out"


@pytest.mark.integration
def test_against_the_real_tiny_teacher(teacher_server, tmp_path):
    inp = instructions(tmp_path, 2)
    flags = ["--base_url", teacher_server.base_url, "--model", teacher_server.model, "--max_tokens", "8"]
    flags += ["--user_max_tokens", "8", "--no_progress", "--temperature", "0"]
    p = cli("generate", "dialogues", "--input", inp, "--output", tmp_path / "a", "--turns", "2", *flags, timeout=300)
    assert p.returncode == 0, p.stderr
    ds = datasets.load_from_disk(str(tmp_path / "a"))
    for row in ds:  # a real chat server: every turn answered, or the row says why not
        assert row["complete"] or row["error"]
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"] * row["turns"]
    stored = len(store_keys(default_store_path()))
    again = cli("generate", "dialogues", "--input", inp, "--output", tmp_path / "b", "--turns", "2", *flags)
    assert again.returncode == 0 and len(store_keys(default_store_path())) == stored
    assert datasets.load_from_disk(str(tmp_path / "b"))["messages"] == ds["messages"]
