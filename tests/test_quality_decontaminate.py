"""Decontamination: a planted benchmark question is flagged per task, removed or tagged; the task table is SPEC 7's."""

from __future__ import annotations

import json

import datasets
import pytest

from lamini_lm.errors import DataError, UsageError
from lamini_lm.quality import EVAL_SETS, NgramIndex, decontaminate, load_eval_set

SCIQ_Q = "What type of organism is commonly used in preparation of foods such as cheese and yogurt"
HELLA = "A man is sitting on a roof. He starts pulling up roofing on a roof and nailing it down again"


@pytest.fixture()
def eval_files(tmp_path):
    sciq = tmp_path / "sciq_test.jsonl"
    sciq.write_text(json.dumps({"question": SCIQ_Q, "distractor1": "viruses", "correct_answer": "mesophilic"}) + "\n")
    hella = tmp_path / "hellaswag_validation.parquet"
    datasets.Dataset.from_dict({"ctx": [HELLA], "endings": [["a", "b", "c", "d"]]}).to_parquet(str(hella))
    return {"sciq": str(sciq), "hellaswag": str(hella)}


def train_ds():
    return datasets.Dataset.from_dict(
        {
            "instruction": [
                "Name three primary colours.",
                f"Answer the question. {SCIQ_Q.upper()}?",  # case and punctuation do not hide it
                "Continue the story.",
                "What type of organism is used for bread?",  # shares only short n-grams
            ],
            "response": ["Red, yellow and blue.", "Mesophilic bacteria.", f"{HELLA}, then climbs down.", "Yeast."],
            "instruction_source": ["alpaca"] * 4,
        }
    )


def test_planted_question_flagged_and_removed(eval_files):
    kept, report = decontaminate(train_ds(), eval_files)
    assert kept["instruction"][:] == ["Name three primary colours.", "What type of organism is used for bread?"]
    assert report.step == "decontamination" and report.rows_in == 4 and report.rows_out == 2
    assert report.removed == {"contaminated": 2} and report.removed_by_source == {"alpaca": 2}
    assert report.details["ngram"] == 13 and report.details["flagged"] == 2
    tasks = report.details["tasks"]
    assert tasks["sciq"]["flagged"] == 1
    assert tasks["sciq"]["by_column"] == {"instruction": 1, "response": 0}
    assert tasks["hellaswag"]["by_column"] == {"instruction": 0, "response": 1}
    assert tasks["sciq"]["rows"] == [1] and report.examples["sciq"] == [train_ds()["instruction"][1]]


def test_tag_action_and_ngram_setting(eval_files):
    tagged, report = decontaminate(train_ds(), eval_files, action="tag", columns=["instruction"])
    assert len(tagged) == 4
    assert tagged["contaminated"][:] == [[], ["sciq"], [], []]
    # with 5-grams, "what type of organism is" is shared too
    _, short = decontaminate(train_ds(), eval_files, ngram=5, columns=["instruction"])
    assert short.details["tasks"]["sciq"]["flagged"] == 2
    assert report.removed == {} and report.rows_out == 4  # tagging removes nothing


def test_a_checked_column_that_is_missing_is_an_error(eval_files):
    no_instruction = train_ds().remove_columns("instruction")
    with pytest.raises(DataError, match="no 'instruction' column"):
        decontaminate(no_instruction, eval_files)
    with pytest.raises(UsageError, match="--action"):
        decontaminate(train_ds(), eval_files, action="drop")


def test_index_reuse_and_eval_loading(eval_files, tmp_path):
    texts = load_eval_set("hellaswag", eval_files["hellaswag"])
    assert HELLA in texts and "d" in texts
    index = NgramIndex({"sciq": load_eval_set("sciq", eval_files["sciq"])}, ngram=13)
    kept, _ = decontaminate(train_ds(), index)
    assert len(kept) == 3
    with pytest.raises(ValueError, match="remove"):
        decontaminate(train_ds(), index, action="drop")
    with pytest.raises(DataError, match="no 'instruction' column"):
        decontaminate(datasets.Dataset.from_dict({"text": ["x"]}), index)
    with pytest.raises(FileNotFoundError, match="no dataset"):
        load_eval_set("sciq", tmp_path / "missing.jsonl")


def test_eval_table_is_spec_7():
    assert list(EVAL_SETS) == [
        "openbookqa", "sciq", "race", "arc_challenge", "piqa", "record", "sst2", "mrpc", "rte", "mnli",
        "mnli_mismatch", "wsc273", "winogrande", "wic", "hellaswag",
    ]  # fmt: skip
    with pytest.raises(KeyError, match="unknown eval task"):
        load_eval_set("nope")


def test_hub_loading_is_the_default(monkeypatch):
    """Without local files the Hub ids are used (offline here, so datasets must say it cannot reach them)."""
    with pytest.raises(Exception, match="(?i)offline|connect|couldn't|not find|doesn't exist"):
        load_eval_set("rte")


@pytest.mark.integration
def test_offline_without_eval_files_fails_in_seconds_naming_the_local_option(tmp_path):
    import subprocess
    import sys
    import time

    data = tmp_path / "in.jsonl"
    data.write_text('{"instruction": "Add 2 and 3.", "response": "5"}\n')
    start = time.monotonic()
    out = str(tmp_path / "o")
    cmd = [sys.executable, "-m", "lamini_lm.cli", "decontaminate", "--input", str(data), "--output", out]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and time.monotonic() - start < 60
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot be loaded" in lines[0] and "--eval_files" in lines[0], proc.stderr
    assert not (tmp_path / "o").exists()


def test_forked_workers_check_batches_as_one_process_does(eval_files, tmp_path):
    """`--num_proc 2` (a process forked per batch) flags, keeps and reports exactly what one process does."""
    from pathlib import Path

    import pyarrow.dataset as pds

    from lamini_lm.quality.decontaminate import DecontaminateConfig, build_index
    from lamini_lm.quality.stages import decontaminate_files

    rows = train_ds().to_list() * 50
    src = tmp_path / "train.jsonl"
    src.write_text("".join(json.dumps({**r, "i": i}) + "\n" for i, r in enumerate(rows)))
    out = {}
    for n in (1, 2):
        cfg = DecontaminateConfig(eval_files=[f"{k}={v}" for k, v in eval_files.items()], num_proc=n, batch_rows=7)
        report, kept = decontaminate_files(str(src), tmp_path / f"o{n}", cfg, build_index(cfg.sources(), None, 13), 0)
        ids = pds.dataset(sorted(Path(tmp_path / f"o{n}" / "data").glob("*.parquet"))).to_table(["i"])["i"]
        out[n] = (ids.to_pylist(), report.removed, report.details["tasks"], report.examples)
    assert out[1] == out[2] and len(out[1][0]) == 100 and out[1][1] == {"contaminated": 100}
