"""The served teacher's columns (``generate responses --top_logprobs K``) through the quality stages: dedup, filter
and decontaminate keep ``teacher_token_ids``/``teacher_logprobs``/``teacher_response_ids`` with their features and
each kept row's own values, and ``train --teacher_logits`` accepts the cleaned artifact.

The teacher is tests/logprob_server.py (a real tiny GPT-2 answering in vLLM's format)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import datasets
import pytest

from lamini_lm.artifacts import Manifest, StepReport, read_manifest
from lamini_lm.generation.stage import RESPONSES_STAGE
from lamini_lm.io import load_table
from lamini_lm.quality import DecontaminateConfig, DedupConfig, StageIO, run_decontaminate, run_dedup, run_filter
from lamini_lm.records import TEACHER_COLUMNS, TEACHER_RESPONSE_IDS, teacher_logits_features
from lamini_lm.train.distill import check_teacher_logits, served_top_logprobs
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
    by_instruction: dict = {}
    for r in source_rows:  # dedup keeps the first of duplicates
        by_instruction.setdefault(r["instruction"], r)
    for row in rows:
        source = by_instruction[row["instruction"]]
        assert row["response"] == source["response"]
        for c in COLUMNS:
            assert row[c] == source[c], (folder.name, row["instruction"], c)
        assert len(row[TEACHER_RESPONSE_IDS]) == len(row[TEACHER_COLUMNS[0]]) >= 1
        assert all(len(top) == K for top in row[TEACHER_COLUMNS[0]])
    return rows


@pytest.mark.slow  # ~50 s: five CLI processes and a served generation pass
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


def small_responses(folder, bench):
    """In process: rows shaped as `generate responses --top_logprobs K` writes them (the teacher columns with their
    features, distinct values per row) and a manifest whose `responses` report says K."""
    texts = [*INSTRUCTIONS, "Give me a tip for learning to cook."]  # and an exact duplicate of a kept row
    n = len(texts)
    rows = {
        "instruction": texts,
        "response": ["" if "sky" in t else f"answer {i}" for i, t in enumerate(texts)],  # one empty response
        "instruction_source": ["alpaca"] * n,
        TEACHER_RESPONSE_IDS: [[i + 1, i + 2] for i in range(n)],
        TEACHER_COLUMNS[0]: [[[i + j + k for k in range(K)] for j in range(2)] for i in range(n)],
        TEACHER_COLUMNS[1]: [[[-0.5 * (i + 1) - k for k in range(K)] for _ in range(2)] for i in range(n)],
    }
    string = datasets.Value("string")
    features = datasets.Features(
        {"instruction": string, "response": string, "instruction_source": string,
         **teacher_logits_features(response_ids=True)}
    )  # fmt: skip
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(folder))
    report = StepReport(step="responses", rows_in=n, rows_out=n, details={"top_logprobs": K})
    Manifest(stage=RESPONSES_STAGE, rows=n, teacher_models=["tiny-teacher"], reports=[report]).save(folder)
    bench.write_text(json.dumps({"question": BENCH_Q}) + "\n")
    return load_table(folder)


def clean(tmp_path, engine: str):
    """dedup -> decontaminate -> filter on the small rows with ``engine``; each output checked, the last returned."""
    source = small_responses(tmp_path / "res", tmp_path / "bench.jsonl")
    run_dedup(StageIO(input=str(tmp_path / "res"), output=str(tmp_path / "dedup")), DedupConfig(engine=engine))
    deduped = check_columns(tmp_path / "dedup", source)
    assert len(deduped) == len(source) - 2  # the lower-case poem and the repeated tip
    decon = DecontaminateConfig(eval_files=[f"sciq={tmp_path / 'bench.jsonl'}"], engine=engine)
    run_decontaminate(StageIO(input=str(tmp_path / "dedup"), output=str(tmp_path / "decon")), decon)
    assert len(check_columns(tmp_path / "decon", source)) == len(deduped) - 1
    run_filter(StageIO(input=str(tmp_path / "decon"), output=str(tmp_path / "clean")))
    kept = check_columns(tmp_path / "clean", source)
    assert kept["instruction"][:] == [INSTRUCTIONS[i] for i in (0, 2, 4)]  # the blacklisted and the empty one go
    return tmp_path / "clean"


class _Cfg:  # the two settings check_teacher_logits reads of a served-top-k artifact
    def __init__(self, path, temperature=1.0):
        self.teacher_logits, self.temperature = str(path), temperature


def test_each_quality_stage_keeps_the_rows_own_teacher_columns_and_train_accepts_the_result(tmp_path):
    from lamini_lm.errors import UsageError

    out = clean(tmp_path, "local")
    manifest = read_manifest(out)
    assert served_top_logprobs(manifest) == K and manifest.teacher_models == ["tiny-teacher"]
    check_teacher_logits(_Cfg(out), tokenizer=None)  # accepted (before: "not a teacher-logits artifact")
    with pytest.raises(UsageError, match="temperature 1"):
        check_teacher_logits(_Cfg(out, temperature=2.0), tokenizer=None)
    # the release folder (push-dataset without --repo_id) keeps them as well, and so its manifest's reports
    from lamini_lm.publishing.dataset import PushDatasetConfig, run_push_dataset

    run_push_dataset(PushDatasetConfig(input=str(out), release_dir=str(tmp_path / "release"), embed="none"))
    assert len(check_columns(tmp_path / "release", load_table(out))) == 3
    check_teacher_logits(_Cfg(tmp_path / "release"), tokenizer=None)
    # a folder whose rows lost the columns, though its manifest still says K: one line naming the column
    load_table(out).remove_columns(list(TEACHER_COLUMNS)).save_to_disk(str(tmp_path / "bare"))
    manifest.save(tmp_path / "bare")
    with pytest.raises(UsageError, match="no 'teacher_token_ids' column"):
        check_teacher_logits(_Cfg(tmp_path / "bare"), tokenizer=None)


@pytest.mark.slow  # ~60 s, mostly ray.init and Ray Data's start on 2 busy cores
def test_the_ray_engine_keeps_them_too(tmp_path):
    ray = pytest.importorskip("ray", reason="--engine ray needs the ray extra (pip install lamini-lm[ray])")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        out = clean(tmp_path, "ray")
    finally:
        ray.shutdown()
    assert served_top_logprobs(read_manifest(out)) == K
