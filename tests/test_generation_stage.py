"""The generation stage as a user meets it: artifacts with manifests, the shared teacher cache, checks before paying,
exit codes, ``lamini-lm cache`` and ``--help``. Real processes against the fault server or the real tiny teacher."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest

from generation_fakes import FakeOpenAI
from lamini_lm.artifacts import lineage, read_manifest
from lamini_lm.config import ConfigError
from lamini_lm.generation import (
    InstructionArgs,
    OutputArgs,
    ResponseArgs,
    TeacherConfig,
    default_store_path,
    run_generate_responses,
)
from lamini_lm.prompts import PROMPT_HASHES

SECRET = "sk-test-secret-0123456789abcdef"


def cli(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    """``lamini-lm ARGS`` in a fresh interpreter, as a user runs it."""
    cmd = [sys.executable, "-m", "lamini_lm.cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def instructions_file(tmp_path, n=6, name="in.jsonl") -> Path:
    return write_jsonl(tmp_path / name, [{"instruction": f"Task {i}: say something."} for i in range(n)])


def teacher(url, *extra):
    return ["--base_url", url, "--model", "fake", "--no_progress", "--backoff_base", "0.01", *extra]


def one_line_error(p: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """The run failed with ``code``, no traceback, and one ``error:`` line (the last) naming ``needles``."""
    err = p.stderr.strip()
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert "Traceback" not in err and len(errors) == 1 and err.splitlines()[-1] == errors[0], err
    for needle in needles:
        assert needle in errors[0], err
    return errors[0]


def store_rows(path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


@pytest.mark.integration
def test_same_instructions_to_a_new_output_folder_are_paid_zero_times(tmp_path):
    inp = instructions_file(tmp_path, n=30)
    seeds = write_jsonl(tmp_path / "seeds.jsonl", [{"instruction": f"Seed task {i}."} for i in range(4)])
    fake = FakeOpenAI()
    with fake as url:
        assert cli("generate", "responses", "--input", inp, "--output", tmp_path / "a", *teacher(url)).returncode == 0
        ins = ["generate", "instructions", "--seeds", seeds, "--num_prompts", "3", *teacher(url)]
        assert cli(*ins, "--output", tmp_path / "ia").returncode == 0
        first = len(fake.requests)
        again = cli("generate", "responses", "--input", inp, "--output", tmp_path / "b", *teacher(url))
        assert cli(*ins, "--output", tmp_path / "ib").returncode == 0
    assert first == 33 and again.returncode == 0, again.stderr
    assert len(fake.requests) - first == 0, "answers already in the shared cache were paid again"
    assert "30 answers came from the cache" in again.stdout
    a, b = (datasets.load_from_disk(str(tmp_path / o)) for o in "ab")
    assert a["response"] == b["response"] and len(b) == 30
    m = read_manifest(tmp_path / "b")
    assert (m.stage, m.rows, m.extra["to_send"], m.extra["from_cache"]) == ("generate_responses", 30, 0, 30)
    assert Path(m.input("teacher_store")["path"]) == Path(default_store_path())
    assert m.input("teacher_store")["answers"] == 33
    assert Path(default_store_path()).parent == Path(os.environ["LAMINI_LM_CACHE"])  # isolated by conftest
    print(f"requests paid again for the same instructions in a new output folder: {len(fake.requests) - first}")


@pytest.mark.integration
def test_manifests_record_config_inputs_lineage_and_never_the_key(tmp_path):
    seeds = write_jsonl(tmp_path / "seeds.jsonl", [{"instruction": f"Seed task {i}."} for i in range(4)])
    env = {**os.environ, "OPENAI_API_KEY": SECRET}
    fake = FakeOpenAI(script=["ok", "500"])
    with fake as url:
        flags = teacher(url, "--max_retries", "0", "--max_failure_rate", "0.5")
        p = cli(
            "generate",
            "instructions",
            "--seeds",
            seeds,
            "--num_prompts",
            "2",
            "--output",
            tmp_path / "ins",
            *flags,
            env=env,
        )
        assert p.returncode == 0, p.stderr
        p = cli(
            "generate", "responses", "--input", tmp_path / "ins", "--output", tmp_path / "res", *teacher(url), env=env
        )
        assert p.returncode == 0, p.stderr
    ins, res = read_manifest(tmp_path / "ins"), read_manifest(tmp_path / "res")
    assert ins.stage == "generate_instructions" and ins.prompt_hashes == {
        "example_guided": PROMPT_HASHES["example_guided"]
    }
    assert ins.config["instructions"]["num_prompts"] == 2 and ins.config["teacher"]["model"] == "fake"
    # settings that mention tokens are settings, not secrets
    assert (ins.config["teacher"]["max_tokens"], ins.config["teacher"]["api_key_env"]) == (1024, "OPENAI_API_KEY")
    assert ins.teacher_models == ["fake"] and ins.rows == 21 and ins.tokens["prompt"] > 0 and ins.cost_usd == 0
    report = ins.report("parse_instructions")
    assert (report.rows_in, report.rows_out, report.removed) == (40, 20, {"request_failed": 20})
    assert report.examples["HTTP 500"][0].startswith("HTTP 500")
    assert ins.input("input")["fingerprint"].startswith("sha256:")
    assert res.prompt_hashes == {"system_message": PROMPT_HASHES["system_message"]}
    assert res.input("input")["manifest_id"] == ins.id and res.input("input")["stage"] == "generate_instructions"
    assert [m.stage for m in lineage(tmp_path / "res")] == ["generate_responses", "generate_instructions"]
    r = res.report("responses")
    assert (r.rows_in, r.rows_out, r.removed) == (21, 20, {"no instruction to answer": 1})
    assert "HTTP 500" in r.examples["no instruction to answer"][0]  # the upstream reason, kept
    assert "lamini_lm_generation" not in datasets.load_from_disk(str(tmp_path / "ins")).info.description
    files = [
        *Path(tmp_path / "ins").rglob("*"),
        *Path(tmp_path / "res").rglob("*"),
        *Path(default_store_path()).parent.glob("*"),
    ]
    assert all(SECRET.encode() not in f.read_bytes() for f in files if f.is_file()), "the API key was written"
    export = tmp_path / "answers.jsonl"
    assert cli("cache", "--export", export).returncode == 0 and SECRET not in export.read_text()


@pytest.mark.integration
@pytest.mark.parametrize(
    "case",
    [
        "foreign_output",
        "negative_prompts",
        "zero_examples",
        "zero_concurrency",
        "zero_budget",
        "bad_strategy",
        "topic_without_topics",
        "no_instruction_column",
        "missing_input",
        "budget_below_one_request",
        "failure_rate_out_of_range",
        "store_is_a_folder",
    ],
)
def test_everything_that_can_fail_is_checked_before_the_first_request(tmp_path, case):
    seeds = instructions_file(tmp_path, name="seeds.jsonl")
    out = tmp_path / "out"
    fake = FakeOpenAI()
    with fake as url:
        ins = ["generate", "instructions", "--seeds", seeds, "--output", out, *teacher(url)]
        res = ["generate", "responses", "--input", seeds, "--output", out, *teacher(url)]
        if case == "foreign_output":
            out.mkdir()
            (out / "notes.txt").write_text("my notes")
            one_line_error(cli(*res), 2, "notes.txt", "--overwrite")
            assert (out / "notes.txt").read_text() == "my notes"
        elif case == "negative_prompts":
            one_line_error(cli(*ins, "--num_prompts", "-2"), 2, "--num_prompts", ">= 1", "-2")
        elif case == "zero_examples":
            one_line_error(cli(*ins, "--n_examples", "0"), 2, "--n_examples")
        elif case == "zero_concurrency":
            one_line_error(cli(*res, "--concurrency", "0"), 2, "--concurrency")
        elif case == "zero_budget":
            one_line_error(cli(*res, "--budget", "0"), 2, "--budget_usd", "> 0")
        elif case == "bad_strategy":
            assert cli(*ins, "--strategy", "random").returncode == 2
        elif case == "topic_without_topics":
            one_line_error(cli(*ins, "--strategy", "topic"), 2, "--topics")
        elif case == "no_instruction_column":
            bad = write_jsonl(tmp_path / "bad.jsonl", [{"text": "no instruction here"}])
            one_line_error(
                cli("generate", "responses", "--input", bad, "--output", out, *teacher(url)),
                1,
                "bad.jsonl",
                "instruction",
            )
        elif case == "missing_input":
            one_line_error(
                cli("generate", "responses", "--input", tmp_path / "nope.jsonl", "--output", out, *teacher(url)),
                1,
                "nope.jsonl",
            )
        elif case == "budget_below_one_request":
            flags = ["--prices", "fake=1000,1000", "--max_tokens", "100", "--budget", "0.0001"]
            one_line_error(cli(*res, *flags), 2, "--budget_usd", "one request")
        elif case == "failure_rate_out_of_range":
            one_line_error(cli(*res, "--max_failure_rate", "7"), 2, "--max_failure_rate")
        elif case == "store_is_a_folder":
            (tmp_path / "folder").mkdir()
            one_line_error(cli(*res, "--store", tmp_path / "folder"), 2, "--store")
    assert fake.requests == [], f"{case}: a request was sent before the check"
    assert not out.exists() or case == "foreign_output"


@pytest.mark.integration
def test_missing_credentials_fail_before_any_request_with_one_line(tmp_path):
    inp = instructions_file(tmp_path)
    fake = FakeOpenAI()
    with fake as url:
        # a local replica plus api.openai.com without $OPENAI_API_KEY: refused before the local one is asked
        urls = f"{url},https://api.openai.com/v1"
        t0 = time.monotonic()
        p = cli(
            "generate",
            "responses",
            "--input",
            inp,
            "--output",
            tmp_path / "out",
            "--base_url",
            urls,
            "--model",
            "fake",
        )
        elapsed = time.monotonic() - t0
    one_line_error(p, 2, "OPENAI_API_KEY", "--base_url")
    assert fake.requests == [] and elapsed < 60 and not (tmp_path / "out").exists()
    # answers already in the cache need no key: a re-run of a finished job works offline of the teacher
    with FakeOpenAI() as url:
        assert cli("generate", "responses", "--input", inp, "--output", tmp_path / "a", *teacher(url)).returncode == 0
    p = cli("generate", "responses", "--input", inp, "--output", tmp_path / "b", "--model", "fake", "--no_progress")
    assert p.returncode == 0, p.stderr


@pytest.mark.integration
def test_an_unreachable_teacher_fails_in_seconds_before_anything_is_sent(tmp_path):
    inp = instructions_file(tmp_path, n=3)
    dead = "http://127.0.0.1:9/v1"  # nothing listens there: the teacher is unreachable
    start = time.monotonic()
    p = cli("generate", "responses", "--input", inp, "--output", tmp_path / "out", *teacher(dead))
    one_line_error(p, 1, "http://127.0.0.1:9/v1 cannot be reached", "--base_url", "nothing was sent")
    assert time.monotonic() - start < 30 and not (tmp_path / "out").exists()


@pytest.mark.integration
def test_a_run_where_every_row_failed_exits_1_and_keeps_its_rows(tmp_path):
    inp = instructions_file(tmp_path, n=3)
    with FakeOpenAI(p500=1.0) as url:  # every request answers HTTP 500
        p = cli(
            "generate", "responses", "--input", inp, "--output", tmp_path / "out", *teacher(url, "--max_retries", "0")
        )
    one_line_error(p, 1, "3 of 3 requests failed (every one)", "500")
    ds = datasets.load_from_disk(str(tmp_path / "out"))  # written anyway: the rows say why
    assert len(ds) == 3 and all(e for e in ds["error"])


@pytest.mark.integration
def test_more_than_max_failure_rate_exits_1_with_the_first_reasons(tmp_path):
    inp = instructions_file(tmp_path, n=5)
    with FakeOpenAI(script=["500", "500"]) as url:
        flags = teacher(url, "--max_retries", "0", "--concurrency", "1")
        p = cli("generate", "responses", "--input", inp, "--output", tmp_path / "out", *flags)
        one_line_error(p, 1, "2 of 5 requests failed", "--max_failure_rate 0.1", "HTTP 500")
    with FakeOpenAI(script=["500", "500"]) as url:
        flags = teacher(url, "--max_retries", "0", "--concurrency", "1", "--max_failure_rate", "0.5")
        p = cli("generate", "responses", "--input", inp, "--output", tmp_path / "out2", *flags)
    assert p.returncode == 0 and "failed rows carry their reason" in p.stdout, p.stderr


@pytest.mark.integration
def test_a_budget_stop_says_how_to_continue_and_the_rerun_pays_only_the_rest(tmp_path):
    inp = instructions_file(tmp_path, n=20)
    prices = ["--prices", "fake=1000,1000", "--max_tokens", "100", "--concurrency", "1"]
    fake = FakeOpenAI()
    with fake as url:
        cmd = ["generate", "responses", "--input", inp, "--output", tmp_path / "out", *teacher(url, *prices)]
        p = cli(*cmd, "--budget", "0.5")
        assert p.returncode == 0 and "budget reached" in p.stdout and "larger --budget_usd" in p.stdout, p
        paid = len(fake.requests)
        assert 0 < paid < 20
        p = cli(*cmd, "--budget", "50")  # the same output again: its own artifact, replaced
        assert p.returncode == 0, p.stderr
    assert sorted(fake.requests) == sorted(f"Task {i}: say something." for i in range(20)), "a row was paid twice"
    assert all(e is None for e in datasets.load_from_disk(str(tmp_path / "out"))["error"])


@pytest.mark.integration
def test_cache_command_shows_exports_and_prunes(tmp_path):
    inp = instructions_file(tmp_path, n=4)
    with FakeOpenAI() as url:
        assert (
            cli("generate", "responses", "--input", inp, "--output", tmp_path / "out", *teacher(url)).returncode == 0
        )
    shown = cli("cache")
    assert shown.returncode == 0 and default_store_path() in shown.stdout
    row = next(line.split() for line in shown.stdout.splitlines() if line.startswith("fake"))
    assert row[1] == "4" and row[2] == "0"
    export = tmp_path / "answers.jsonl"
    p = cli("cache", "--export", export)
    lines = [json.loads(x) for x in export.read_text().splitlines()]
    assert p.returncode == 0 and "wrote 4 answers" in p.stdout and len(lines) == 4
    assert {x["text"] for x in lines} == {f"Answer: Task {i}: say something." for i in range(4)}
    assert set(lines[0]) >= {"key", "created", "text", "usage", "cost_usd", "model"}
    one_line_error(cli("cache", "--prune"), 2, "--older_than_days")
    p = cli("cache", "--prune", "--older_than_days", "1")  # all are younger than a day
    assert p.returncode == 0 and "removed 0 answers" in p.stdout and store_rows(default_store_path()) == 4
    p = cli("cache", "--prune", "--model", "fake")
    assert p.returncode == 0 and "removed 4 answers" in p.stdout and store_rows(default_store_path()) == 0
    one_line_error(cli("cache", "--store", tmp_path / "none.sqlite"), 2, "none.sqlite")


def test_default_cache_follows_lamini_lm_cache_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("LAMINI_LM_CACHE", str(tmp_path / "mine"))
    assert default_store_path() == str(tmp_path / "mine" / "teacher.sqlite")
    monkeypatch.delenv("LAMINI_LM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_store_path() == str(tmp_path / "xdg" / "lamini_lm" / "teacher.sqlite")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_store_path() == os.path.expanduser("~/.cache/lamini_lm/teacher.sqlite")
    assert OutputArgs(output="o", store="s.sqlite").store_path() == "s.sqlite"


def test_python_users_get_the_same_checks():
    with pytest.raises(ConfigError, match="--num_prompts"):
        InstructionArgs(seeds="s.jsonl", num_prompts=0)
    with pytest.raises(ConfigError, match="--seeds is required"):
        InstructionArgs()
    with pytest.raises(ConfigError, match="--instruction_source"):
        ResponseArgs(input="x.jsonl", instruction_source="nope")
    with pytest.raises(ConfigError, match="--max_failure_rate"):
        OutputArgs(output="o", max_failure_rate=1.5)
    with pytest.raises(ConfigError, match="--top_p"):
        TeacherConfig(top_p=0)


@pytest.mark.parametrize("stage", [["generate", "instructions"], ["generate", "responses"], ["cache"]])
def test_help_is_plain_and_ends_with_an_example(stage):
    p = cli(*stage, "--help")
    assert p.returncode == 0, p.stderr
    text = p.stdout
    assert "SPEC" not in text and "(default: None)" not in text
    assert text.rstrip().splitlines()[-1].strip().startswith("lamini-lm " + stage[0])
    if stage[0] == "generate":
        assert "turn off --progress" in text and "(required)" in text
        assert text.count("(default: 32)") == 1  # --concurrency's default, once


@pytest.mark.integration
def test_against_the_real_tiny_teacher_a_new_output_is_answered_from_the_cache(teacher_server, tmp_path):
    inp = instructions_file(tmp_path, n=3)
    flags = [
        "--base_url",
        teacher_server.base_url,
        "--model",
        teacher_server.model,
        "--max_tokens",
        "8",
        "--no_progress",
    ]
    first = cli("generate", "responses", "--input", inp, "--output", tmp_path / "a", *flags)
    assert first.returncode == 0, first.stderr
    stored = store_rows(default_store_path())
    second = cli("generate", "responses", "--input", inp, "--output", tmp_path / "b", *flags)
    assert second.returncode == 0 and "3 answers came from the cache" in second.stdout, second
    assert store_rows(default_store_path()) == stored == 3
    m = read_manifest(tmp_path / "b")
    assert m.extra == {"to_send": 0, "from_cache": 3, "not_sent": 0} and m.teacher_models
    assert (
        datasets.load_from_disk(str(tmp_path / "a"))["response"]
        == datasets.load_from_disk(str(tmp_path / "b"))["response"]
    )


@pytest.mark.integration
def test_streamed_chunks_give_the_rows_and_manifest_of_the_in_memory_path(tmp_path):
    from lamini_lm.generation import generate_responses

    rows = [{"instruction": f"Task {i}: say something.", "instruction_source": "alpaca"} for i in range(7)]
    rows[2]["input"] = "an input joined to the instruction"
    rows[4]["instruction"] = ""  # no instruction: a row with its reason, not a request
    inp = write_jsonl(tmp_path / "in.jsonl", rows)
    with FakeOpenAI(p500=0.2, seed=3) as url:
        # the stage: 4 chunks of 2 rows through one session; the in-memory Python API on a store of its own
        p = cli("generate", "responses", "--input", inp, "--output", tmp_path / "a", "--chunk_rows", "2",
                "--store", tmp_path / "a.sqlite", *teacher(url))  # fmt: skip
        assert p.returncode == 0, p.stderr
        cfg = TeacherConfig(base_url=url, model="fake", progress=False, backoff_base=0.01)
        old, report = generate_responses(str(inp), config=cfg, store=str(tmp_path / "b.sqlite"), return_report=True)
    new = datasets.load_from_disk(str(tmp_path / "a"))
    assert new.features == old.features and new.to_list() == old.to_list()
    assert new[2]["instruction"].endswith("an input joined to the instruction") and new[4]["error"]
    m = read_manifest(tmp_path / "a")
    assert len(m.reports) == 1
    got = m.reports[0]
    for k in ("step", "rows_in", "rows_out", "removed", "examples", "details"):
        assert got[k] == getattr(report, k), k
    assert m.rows == len(old) == 7
    assert m.tokens == {"prompt": sum(old["prompt_tokens"]), "completion": sum(old["completion_tokens"])}
    assert m.cost_usd == round(sum(old["cost_usd"]), 6) and m.teacher_models == ["fake"]
    assert m.extra == {"to_send": 6, "from_cache": 0, "not_sent": 0} and m.config["responses"]["chunk_rows"] == 2
    assert not any(name.startswith(".") for name in m.files), m.files  # the scratch shards are gone


@pytest.mark.integration
def test_an_instruction_in_two_chunks_is_one_request_in_the_report(tmp_path):
    texts = ["Task A: say something.", "Task B.", "Task C.", "Task A: say something."]
    inp = write_jsonl(tmp_path / "in.jsonl", [{"instruction": t} for t in texts])
    flags = ["--input", inp, "--chunk_rows", "2", "--store", tmp_path / "s.sqlite", "--max_retries", "0"]
    fake = FakeOpenAI()
    with fake as url:
        p = cli("generate", "responses", *flags, "--output", tmp_path / "a", *teacher(url))
        assert p.returncode == 0, p.stderr
        assert len(fake.requests) == 3  # the store and the session dedup: Task A is sent once
        again = cli("generate", "responses", *flags, "--output", tmp_path / "b", *teacher(url))
    assert again.returncode == 0 and len(fake.requests) == 3, again.stderr
    first, second = (read_manifest(tmp_path / o).report("responses").details for o in "ab")
    assert (first["requests"], first["to_send"], first["from_cache"]) == (3, 3, 0)
    assert (second["requests"], second["to_send"], second["from_cache"]) == (3, 0, 3)
    assert "3 answers came from the cache" in again.stdout
    assert read_manifest(tmp_path / "a").extra == {"to_send": 3, "from_cache": 0, "not_sent": 0}
    rows = datasets.load_from_disk(str(tmp_path / "a"))
    assert rows[3]["response"] == rows[0]["response"] and rows[3]["request_key"] == rows[0]["request_key"]


def test_run_function_takes_the_dataclasses(tmp_path):
    with FakeOpenAI() as url:
        ds, manifest = run_generate_responses(
            ResponseArgs(input=str(instructions_file(tmp_path, n=2))),
            OutputArgs(output=str(tmp_path / "out")),
            TeacherConfig(base_url=url, model="fake", progress=False),
        )
    assert len(ds) == 2 and manifest.rows == 2 and read_manifest(tmp_path / "out").id == manifest.id
    assert manifest.report("responses").summary() == "responses: 2 rows in, 2 out"


@pytest.mark.integration
def test_overwrite_replaces_a_foreign_folder_and_yaml_settings_work(tmp_path):
    inp = instructions_file(tmp_path, n=2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with FakeOpenAI() as url:
        config = tmp_path / "generate.yaml"
        config.write_text(f"input: {inp}\noutput: {out}\nbase_url: {url}\nmodel: fake\nprogress: false\n")
        assert cli("generate", "responses", config).returncode == 2  # a user's folder: refused
        p = cli("generate", "responses", config, "--overwrite")
    assert p.returncode == 0, p.stderr
    assert not (out / "notes.txt").exists() and len(datasets.load_from_disk(str(out))) == 2
    assert read_manifest(out).config["output"]["overwrite"] is True
    assert cli("generate").returncode == 2 and "instructions,responses" in cli("generate").stderr
