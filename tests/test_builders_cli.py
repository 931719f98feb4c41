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
    assert f"{bad}, line 2: not valid JSON" in proc.stdout
    assert not (tmp_path / "hf" / "datasets" / "lamini_lm___instructions").exists() or not list(
        (tmp_path / "hf" / "datasets" / "lamini_lm___instructions").glob("*/*/*/dataset_info.json")
    )
    assert cli(env=env).returncode == 2  # nothing to build
