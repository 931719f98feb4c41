"""The quality stages as real processes on real files: artifacts with manifests that carry every earlier step's
report, lineage back to the input, output safety, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import datasets
import pytest
from huggingface_hub import DatasetCard

from lamini_lm.artifacts import Manifest, StepReport, lineage, read_manifest
from lamini_lm.io import load_table

BENCH_Q = "Which of the following statements best describes the function of mitochondria inside eukaryotic cells"


TOPICS = ["the sea", "a lost key", "winter mornings", "tax law", "a quiet robot", "mountain goats", "jazz", "bread",
          "volcanoes", "old bridges of Rome", "chess openings", "the moon landing"]  # fmt: skip
VERBS = ["Write a poem about", "Explain to a child", "List three facts on", "Summarize the history of",
         "Give advice about", "Describe", "Compose a limerick on", "Argue for", "Tell a joke about",
         "Invent a recipe with", "Plan a trip around", "Teach me"]  # fmt: skip


def rows(n: int = 12) -> list[dict]:
    out = [
        {
            "instruction": f"{VERBS[i % len(VERBS)]} {TOPICS[i]}, in {i + 2} sentences.",
            "response": f"Here is answer {i}.",
            "instruction_source": ["alpaca", "generated_flan"][i % 2],
            "request_key": f"k{i}",
        }
        for i in range(n)
    ]
    out[1]["instruction"] = out[0]["instruction"].upper()  # an exact duplicate
    out[2]["instruction"] = "Draw a picture of a cat sitting on a mat."  # blacklist
    out[3]["instruction"] = f"Answer this: {BENCH_Q}?"  # contaminated
    return out


def write_jsonl(path, items):
    path.write_text("".join(json.dumps(r) + "\n" for r in items))
    return path


def lamini(*args, env=None, cwd=None):
    cmd = [sys.executable, "-m", "lamini_lm.cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=cwd)


def one_line_error(proc, code):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_stages_chain_into_a_release_whose_manifest_holds_every_report(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", rows())
    bench = write_jsonl(tmp_path / "bench.jsonl", [{"question": BENCH_Q}])
    proc = lamini("dedup", "--input", src, "--output", tmp_path / "d", "--num_proc", 1)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "dedup: 12 rows in, 11 out (exact 1)"
    assert lamini("filter", "--input", tmp_path / "d", "--output", tmp_path / "f").returncode == 0
    proc = lamini("decontaminate", "--input", tmp_path / "f", "--output", tmp_path / "c",
                  "--eval_files", f"sciq={bench}", "--columns", "instruction", "response")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "flagged by task: {'sciq': 1}" in proc.stdout and "decontamination: 10 rows in, 9 out" in proc.stdout
    assert lamini("stats", "--input", tmp_path / "c", "--output", tmp_path / "s", "--embed", "tfidf").returncode == 0
    proc = lamini("push-dataset", "--input", tmp_path / "c", "--release_dir", tmp_path / "r", "--embed", "none")
    assert proc.returncode == 0, proc.stderr
    assert "release folder:" in proc.stdout and "(9 rows)" in proc.stdout
    assert not list(tmp_path.glob("*.report.json"))  # the manifests hold the reports

    clean = load_table(tmp_path / "c")  # parquet shards under data/
    assert len(clean) == 9 and BENCH_Q not in " ".join(clean["instruction"][:])
    manifest = read_manifest(tmp_path / "c")
    assert manifest.stage == "decontaminate" and manifest.rows == 9
    assert [r["step"] for r in manifest.reports] == ["dedup", "filters", "decontamination"]
    assert manifest.report("filters").removed == {"blacklist": 1}
    assert manifest.config["eval_files"] == [f"sciq={bench}"] and manifest.config["columns"] == [
        "instruction",
        "response",
    ]
    assert manifest.input()["manifest_id"] == read_manifest(tmp_path / "f").id
    release = read_manifest(tmp_path / "r")
    assert [m.stage for m in lineage(tmp_path / "r")] == ["release", "decontaminate", "filter", "dedup"]
    assert [r["step"] for r in release.reports] == ["dedup", "filters", "decontamination", "release"]
    stats = read_manifest(tmp_path / "s")
    assert stats.stage == "stats" and json.loads((tmp_path / "s/stats.json").read_text())["rows"] == 9
    assert (tmp_path / "s/diversity_map.png").exists() and stats.extra["stats"]["counts"]
    card = DatasetCard.load(tmp_path / "r/README.md").text
    assert "| sciq | 1 |" in card and "| dedup | 12 | 11 | `exact` 1 |" in card
    published = datasets.load_dataset(str(tmp_path / "r"), split="train")
    assert "request_key" not in published.column_names and len(published) == 9


def test_a_stage_carries_the_generation_manifest_forward(tmp_path):
    gen = tmp_path / "responses"
    datasets.Dataset.from_list(rows(6)).save_to_disk(str(gen))
    parse = StepReport(step="generation", rows_in=6, rows_out=6, details={"parse_failures": 0})
    Manifest(stage="generate", reports=[parse], teacher_models=["gpt-3.5-turbo"], tokens={"prompt": 60},
             cost_usd=0.01, prompt_hashes={"system_message": "abc"}).save(gen)  # fmt: skip
    assert lamini("dedup", "--input", gen, "--output", tmp_path / "d", "--num_proc", 1).returncode == 0
    manifest = read_manifest(tmp_path / "d")
    assert [r["step"] for r in manifest.reports] == ["generation", "dedup"]
    assert manifest.teacher_models == ["gpt-3.5-turbo"] and manifest.cost_usd == 0.01
    assert manifest.tokens == {"prompt": 60} and manifest.prompt_hashes == {"system_message": "abc"}
    assert manifest.input()["stage"] == "generate"


def test_a_folder_with_user_files_is_refused_and_kept(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", rows(6))
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for stage in ("dedup", "filter"):
        line = one_line_error(lamini(stage, "--input", src, "--output", out), 2)
        assert "notes.txt" in line and "--overwrite" in line
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    release = tmp_path / "rel"
    release.mkdir()
    (release / "notes.txt").write_text("mine")
    one_line_error(lamini("push-dataset", "--input", src, "--release_dir", release, "--embed", "none"), 2)
    assert sorted(p.name for p in release.iterdir()) == ["notes.txt"]
    # the same stage's own artifact is replaced; another stage's is refused; --overwrite replaces anything
    assert lamini("dedup", "--input", src, "--output", tmp_path / "d").returncode == 0
    first = read_manifest(tmp_path / "d").id
    assert lamini("dedup", "--input", src, "--output", tmp_path / "d").returncode == 0
    assert read_manifest(tmp_path / "d").id != first
    assert "'dedup' output" in one_line_error(lamini("filter", "--input", src, "--output", tmp_path / "d"), 2)
    assert lamini("filter", "--input", src, "--output", out, "--overwrite").returncode == 0
    assert not (out / "notes.txt").exists() and read_manifest(out).stage == "filter"


def test_user_mistakes_are_one_line(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", rows(4))
    line = one_line_error(lamini("dedup", "--input", tmp_path / "nope.jsonl", "--output", tmp_path / "o"), 1)
    assert "nope.jsonl" in line and "no such file" in line
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(rows(4)[0]) + "\n{not json\n")
    assert f"{bad}, line 2: not valid JSON" in one_line_error(
        lamini("filter", "--input", bad, "--output", tmp_path / "o"), 1
    )
    no_instruction = write_jsonl(tmp_path / "resp.jsonl", [{"response": "Hi."}])
    line = one_line_error(
        lamini("decontaminate", "--input", no_instruction, "--output", tmp_path / "o", "--eval_files", f"sciq={src}"),
        1,
    )
    assert "no 'instruction' column" in line
    assert "--threshold: must be in (0, 1], got 7" in one_line_error(
        lamini("dedup", "--input", src, "--output", tmp_path / "o", "--threshold", 7), 2
    )
    assert "--action" in one_line_error(lamini("decontaminate", "--input", src, "--output", tmp_path / "o",
                                               "--action", "drop", "--eval_files", f"sciq={src}"), 2)  # fmt: skip
    assert "TASK=PATH" in one_line_error(
        lamini("decontaminate", "--input", src, "--output", tmp_path / "o", "--eval_files", "sciq"), 2
    )
    assert "--tasks: unknown task 'nope'" in one_line_error(
        lamini("decontaminate", "--input", src, "--output", tmp_path / "o", "--tasks", "nope"), 2
    )
    assert "--output" in lamini("dedup", "--input", src).stderr  # required
    assert lamini("dedup", "--input", src).returncode == 2
    assert "is the --input" in one_line_error(lamini("dedup", "--input", tmp_path, "--output", tmp_path), 2)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("stage", ["dedup", "filter", "decontaminate", "stats", "push-dataset"])
def test_help_is_plain_and_ends_with_examples(stage):
    proc = lamini(stage, "--help")
    assert proc.returncode == 0
    assert "SPEC" not in proc.stdout and "examples:" in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-1].strip().startswith(f"lamini-lm {stage}")
    assert "--input INPUT" in proc.stdout and "(required)" in proc.stdout


@pytest.mark.integration
def test_push_dataset_to_fake_hub_replaces_only_its_own_release(fake_hub, tmp_path):
    from huggingface_hub import HfApi

    clean = tmp_path / "clean"
    datasets.Dataset.from_list(rows()).save_to_disk(str(clean))
    Manifest(stage="decontaminate", reports=[StepReport(step="dedup", rows_in=13, rows_out=12)]).save(clean)
    env = {**fake_hub.env, "HF_HUB_CACHE": str(tmp_path / "hub-cache")}
    push = ("push-dataset", "--input", clean, "--release_dir", tmp_path / "release", "--repo_id", "fake-user/lamini",
            "--embed", "tfidf", "--max_shard_rows", 5)  # fmt: skip
    proc = lamini(*push, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "pushed to fake-user/lamini" in proc.stdout
    files = set(fake_hub.hub.files("fake-user/lamini", repo_type="dataset"))
    assert {"README.md", "lamini_lm.json", "data/train-00002-of-00003.parquet", "plots/lengths.png"} <= files
    card = DatasetCard.load("fake-user/lamini", repo_type="dataset")
    assert card.data.license == "cc-by-nc-4.0" and "| dedup | 13 | 12 | none |" in card.text
    assert fake_hub.token not in card.content
    back = datasets.load_dataset("fake-user/lamini", split="train")
    assert back["instruction"][:] == [r["instruction"] for r in rows()] and "request_key" not in back.column_names
    # a second release in one shard: the three old shards go in the same commit
    proc = lamini(*push[:-1], 50, env=env)
    assert proc.returncode == 0, proc.stderr
    shards = sorted(f for f in fake_hub.hub.files("fake-user/lamini", repo_type="dataset") if f.startswith("data/"))
    assert shards == ["data/train-00000-of-00001.parquet"]
    # the release folder pushed as it is
    assert (
        lamini("push-dataset", "--input", tmp_path / "release", "--repo_id", "fake-user/again", env=env).returncode
        == 0
    )
    assert "data/train-00000-of-00001.parquet" in fake_hub.hub.files("fake-user/again", repo_type="dataset")
    # a repo holding someone else's files is refused, before anything is written
    HfApi().create_repo("fake-user/theirs", repo_type="dataset")
    HfApi().upload_file(path_or_fileobj=b"mine", path_in_repo="notes.txt", repo_id="fake-user/theirs",
                        repo_type="dataset")  # fmt: skip
    line = one_line_error(lamini("push-dataset", "--input", clean, "--release_dir", tmp_path / "r2",
                                 "--repo_id", "fake-user/theirs", env=env), 2)  # fmt: skip
    assert "fake-user/theirs" in line and "notes.txt" in line and "--overwrite" in line
    assert not (tmp_path / "r2").exists()
    assert set(fake_hub.hub.files("fake-user/theirs", repo_type="dataset")) == {"notes.txt"} | (
        {".gitattributes"} & set(fake_hub.hub.files("fake-user/theirs", repo_type="dataset"))
    )
