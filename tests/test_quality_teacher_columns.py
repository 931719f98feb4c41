"""The served teacher's columns (``generate responses --top_logprobs K``) through the quality stages: dedup, filter
and decontaminate keep ``teacher_token_ids``/``teacher_logprobs``/``teacher_response_ids`` with their features and
each kept row's own values, and ``train --teacher_logits`` accepts the cleaned artifact.

The teacher is tests/logprob_server.py (a real tiny GPT-2 answering in vLLM's format)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from lamini_lm.io import load_table
from lamini_lm.records import TEACHER_COLUMNS, TEACHER_RESPONSE_IDS, teacher_logits_features
from logprob_server import LogprobServer

K = 4
COLUMNS = (*TEACHER_COLUMNS, TEACHER_RESPONSE_IDS)
BENCH_Q = "Which of the following statements best describes the function of mitochondria inside eukaryotic cells"
INSTRUCTIONS = [
    "Write a short poem about the sea.",
    "write a short poem about the sea",  # an exact duplicate once normalised: dedup removes it
    "Name three primary colours please.",
    "Draw a picture of a friendly cat.",  # the blacklist filter removes it
    "Give me a tip for learning to cook.",
    f"Answer this: {BENCH_Q}?",  # decontaminate removes it
    "Explain why the sky looks blue.",
]


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lamini_lm.cli", *map(str, args)], capture_output=True, text=True)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def generated(tiny_gpt2, tmp_path_factory):
    """Responses with the teacher columns, generated once for this module's tests."""
    tmp = tmp_path_factory.mktemp("teacher-columns")
    inp = tmp / "in.jsonl"
    inp.write_text("".join(json.dumps({"instruction": t}) + "\n" for t in INSTRUCTIONS))
    with LogprobServer(tiny_gpt2) as served:
        ok(cli(
            "generate", "responses", "--input", inp, "--output", tmp / "res", "--base_url", served.base_url,
            "--model", served.name, "--no_progress", "--max_tokens", "8", "--temperature", "0",
            "--top_logprobs", K, "--store", tmp / "store.sqlite",
        ))  # fmt: skip
    bench = tmp / "bench.jsonl"
    bench.write_text(json.dumps({"question": BENCH_Q}) + "\n")
    return tmp / "res", bench


def check_columns(folder, source_rows):
    """The folder's rows carry the teacher columns with their declared features, each row its own values."""
    rows = load_table(folder)
    expected = teacher_logits_features(response_ids=True)
    for c in COLUMNS:
        assert rows.features[c] == expected[c], (folder.name, c, rows.features[c])
    by_instruction = {r["instruction"]: r for r in source_rows}
    for row in rows:
        source = by_instruction[row["instruction"]]
        assert row["response"] == source["response"]
        for c in COLUMNS:
            assert row[c] == source[c], (folder.name, row["instruction"], c)
        assert len(row[TEACHER_RESPONSE_IDS]) == len(row[TEACHER_COLUMNS[0]]) >= 1
        assert all(len(top) == K for top in row[TEACHER_COLUMNS[0]])
    return rows


def test_teacher_columns_survive_dedup_filter_decontaminate_and_train(generated, tiny_gpt2, tmp_path):
    res, bench = generated
    source = load_table(res)
    assert len(set(map(tuple, source[TEACHER_RESPONSE_IDS]))) > 3  # distinct rows: a misalignment would show
    check_columns(res, source)

    ok(cli("dedup", "--input", res, "--output", tmp_path / "dedup"))
    deduped = check_columns(tmp_path / "dedup", source)
    assert len(deduped) == len(INSTRUCTIONS) - 1
    ok(cli("decontaminate", "--input", tmp_path / "dedup", "--output", tmp_path / "decon",
           "--eval_files", f"sciq={bench}"))  # fmt: skip
    decon = check_columns(tmp_path / "decon", source)
    assert len(decon) == len(deduped) - 1 and not any(BENCH_Q in t for t in decon["instruction"])
    ok(cli("filter", "--input", tmp_path / "decon", "--output", tmp_path / "clean"))
    clean = check_columns(tmp_path / "clean", source)
    assert "Draw a picture of a friendly cat." not in clean["instruction"] and len(clean) >= 2

    student = shutil.copytree(tiny_gpt2, tmp_path / "student")
    ok(cli(
        "train", "--family", "causal", "--model_name_or_path", student, "--teacher_logits", tmp_path / "clean",
        "--output_dir", tmp_path / "out", "--use_cpu", "true", "--max_steps", "2", "--eval_split_size", "0",
        "--per_device_train_batch_size", "2", "--alpha", "0", "--save_strategy", "no", "--report_to", "none",
    ))  # fmt: skip
    manifest = json.loads((tmp_path / "out" / "lamini_lm.json").read_text())
    facts = manifest["extra"]["distillation"]
    assert facts["type"] == "token-level (served top-k, generation pass)" and facts["top_k"] == K
    assert facts["teacher"] == "tiny-teacher"
