"""`lamini-lm build` in a subprocess, then `load_dataset("lamini_lm/instructions")` in a fresh interpreter,
offline, with the caches of the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import datasets
import pytest

from lamini_lm.records import GENERATION_COLUMNS, generation_features

LOAD = """
import json
from datasets import load_dataset
out = {}
out["all"] = load_dataset("lamini_lm/instructions", split="train").to_list()
out["generated_flan"] = list(load_dataset("lamini_lm/instructions", "generated_flan", split="train")["instruction"])
out["streamed"] = [r["instruction"] for r in load_dataset("lamini_lm/instructions", split="train", streaming=True)]
print("RESULT " + json.dumps(out))
"""


def run_env(cache):
    env = dict(os.environ)
    env.update(
        HF_HOME=str(cache),
        HF_DATASETS_CACHE=str(cache / "datasets"),
        HF_HUB_CACHE=str(cache / "hub"),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
    )
    return env


def save_run(path, rows):
    full = []
    for instruction, source, response in rows:
        row = {c: None for c in GENERATION_COLUMNS}
        row.update(instruction=instruction, instruction_source=source, response=response, seed_ids=[], topics=[])
        row.update(prompt_tokens=1, completion_tokens=1, cost_usd=0.0)
        full.append(row)
    datasets.Dataset.from_list(full, features=generation_features()).save_to_disk(str(path))
    return str(path)


def cli(*args, env):
    cmd = [sys.executable, "-m", "lamini_lm.cli", "build", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def load_in_fresh_interpreter(env):
    proc = subprocess.run([sys.executable, "-c", LOAD], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


@pytest.mark.integration
def test_lamini_lm_build_then_load_dataset_in_a_new_process_offline(tmp_path):
    env = run_env(tmp_path / "hf")
    run1 = save_run(tmp_path / "run1", [("Name a prime.", "generated_flan", "2"), ("Say hi.", "alpaca", "Hi.")])
    proc = cli("--generated", run1, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "generated_flan" in proc.stdout and 'load_dataset("lamini_lm/instructions"' in proc.stdout
    got = load_in_fresh_interpreter(env)
    assert got["all"] == [
        {"instruction": "Name a prime.", "response": "2", "instruction_source": "generated_flan"},
        {"instruction": "Say hi.", "response": "Hi.", "instruction_source": "alpaca"},
    ]
    assert got["generated_flan"] == ["Name a prime."] and got["streamed"] == ["Name a prime.", "Say hi."]


@pytest.mark.integration
def test_rebuild_after_a_new_generation_run_is_what_the_next_process_loads(tmp_path):
    from lamini_lm.builders import build_instructions

    run1 = save_run(tmp_path / "run1", [("Name a prime.", "generated_flan", "2"), ("Say hi.", "alpaca", "Hi.")])
    build_instructions(generated=[run1])  # in this process, into the test's cache
    env = run_env(datasets.config.HF_DATASETS_CACHE.parent)
    env["HF_DATASETS_CACHE"] = str(datasets.config.HF_DATASETS_CACHE)
    run2 = save_run(tmp_path / "run2", [("Name an even prime.", "generated_flan", "2")])
    proc = cli("--generated", run1, run2, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = load_in_fresh_interpreter(env)
    assert got["generated_flan"] == ["Name a prime.", "Name an even prime."] and len(got["all"]) == 3


@pytest.mark.integration
def test_lamini_lm_build_reports_bad_input_with_file_and_line(tmp_path):
    env = run_env(tmp_path / "hf")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a", "response": "b", "instruction_source": "alpaca"}\n{not json\n')
    proc = cli("--generated", str(bad), env=env)
    assert proc.returncode == 1
    [line] = [ln for ln in proc.stderr.splitlines() if "error" in ln]  # one line, no traceback
    assert "Traceback" not in proc.stderr
    assert line.startswith("lamini-lm build: error: ") and f"{bad}, line 2: not valid JSON" in line
    assert not (tmp_path / "hf" / "datasets" / "lamini_lm___instructions").exists() or not list(
        (tmp_path / "hf" / "datasets" / "lamini_lm___instructions").glob("*/*/*/dataset_info.json")
    )
    nothing = cli(env=env)  # nothing to build
    assert nothing.returncode == 2 and "nothing to build" in nothing.stderr
    missing = cli("--generated", str(tmp_path / "nope"), env=env)
    assert missing.returncode == 1 and f"--generated {tmp_path / 'nope'}: no such file" in missing.stderr
    other = tmp_path / "notes"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    assert "neither a release folder" in cli("--generated", str(other), env=env).stderr


@pytest.mark.integration
def test_build_accepts_a_release_folder_and_records_its_manifest(tmp_path):
    """The quickstart's (and push-dataset's) release folder builds as it is; jsonl and save_to_disk too."""
    from lamini_lm.artifacts import read_manifest
    from lamini_lm.publishing.dataset import build_release

    env = run_env(tmp_path / "hf")
    ds = datasets.Dataset.from_dict(
        {
            "instruction": ["Name a prime.", "Say hi."],
            "response": ["2", "Hi."],
            "instruction_source": ["generated_flan", "alpaca"],
            "request_key": ["k1", "k2"],
        }
    )
    release = build_release(ds, tmp_path / "dataset", embed="none", max_shard_rows=1)
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text(json.dumps({"instruction": "Add 2 and 3.", "response": "5", "instruction_source": "alpaca"}))
    proc = cli("--generated", str(release), str(jsonl), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"input {release}: release artifact (manifest {read_manifest(release).id})" in proc.stdout
    got = load_in_fresh_interpreter(env)
    assert [r["instruction"] for r in got["all"]] == ["Name a prime.", "Say hi.", "Add 2 and 3."]
    assert got["generated_flan"] == ["Name a prime."]


@pytest.mark.integration
def test_build_warns_when_the_name_is_taken_on_the_hub(fake_hub, tmp_path):
    from huggingface_hub import HfApi

    run1 = save_run(tmp_path / "run1", [("Name a prime.", "generated_flan", "2")])
    env = {**fake_hub.env, "HF_DATASETS_CACHE": str(tmp_path / "ds-cache"), "HF_HUB_CACHE": str(tmp_path / "hub")}
    proc = cli("--generated", run1, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning" not in proc.stdout.lower()
    HfApi().create_repo("lamini_lm/instructions", repo_type="dataset")
    proc = cli("--generated", run1, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [warning] = [ln for ln in proc.stdout.splitlines() if ln.startswith("warning:")]
    assert "the Hub has a dataset named lamini_lm/instructions" in warning and "HF_HUB_OFFLINE=1" in warning
    offline = cli("--generated", run1, env={**env, "HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 0 and "warning:" not in offline.stdout
