"""The rubric judge: parsing sloppy grades, counting, the user-oriented builder, student answers, end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lamini_lm.artifacts import read_manifest
from lamini_lm.evaluation.judge import (
    GRADE_DEFINITIONS,
    JUDGE_TEMPLATE,
    Judgement,
    judge_messages,
    parse_rating,
    rubric_counts,
)


@pytest.mark.parametrize(
    ("reply", "grade", "rule"),
    [
        ("Rating: B", "B", "label"),
        ("Rating: B\nThe answer misses one detail.", "B", "label"),
        ("**Rating:** c", "C", "label"),
        ("Grade: A-", "A", "label"),
        ("The grade is D.", "D", "label"),
        ("My verdict: **D**", "D", "label"),
        ("Score = [A]", "A", "label"),
        ("b)", "B", "leading"),
        ("**C**", "C", "leading"),
        ("(A) Correct and complete.", "A", "leading"),
        ("D. The answer is unrelated.", "D", "leading"),
        ("B - minor errors", "B", "leading"),
        ("C\nIt has factual errors.", "C", "leading"),
        ("I'd give it a B+", "B", "phrase"),
        ("I'd give it an A", "A", "phrase"),
        ("I would rate this answer C because the date is wrong.", "C", "phrase"),
        ("This deserves a solid B.", "B", "phrase"),
    ],
)
def test_sloppy_ratings_are_read(reply, grade, rule):
    rating = parse_rating(reply)
    assert (rating.grade, rating.rule) == (grade, rule)


@pytest.mark.parametrize(
    "reply",
    [
        "",
        None,
        "   ",
        "Nice answer.",
        "A good answer overall.",  # a word, not a grade
        "Between B and C.",  # two grades offered
        "I'd rate it between B and C",
        "Rating: B/C",
        "Rating: B or C",
        "Rating: Average",
        "B because it is ok",  # a bare leading letter must stand alone
    ],
)
def test_unreadable_ratings_are_unparsed_never_guessed(reply):
    rating = parse_rating(reply)
    assert rating.grade is None and rating.rule == "unparsed"


def test_prompt_carries_the_paper_definitions():
    content = judge_messages("Name a colour.", "Blue.")[0]["content"]
    for grade, definition in GRADE_DEFINITIONS.items():
        assert f"{grade}: the answer is {definition};" in content
    assert "[Instruction]\nName a colour.\n\n[Answer]\nBlue." in content
    assert "{answer}" in JUDGE_TEMPLATE


def test_counts_keep_unparsed_and_failed_apart():
    rows = [
        Judgement("0", "p", "a", "A", "label", "Rating: A"),
        Judgement("1", "p", "a", "A", "leading", "A"),
        Judgement("2", "p", "a", "D", "label", "Rating: D"),
        Judgement("3", "p", "a", None, "unparsed", "hmm"),
        Judgement("4", "p", "a", None, "error", None, "HTTP 500"),
    ]
    assert rubric_counts(rows) == {"A": 2, "B": 0, "C": 0, "D": 1, "unparsed": 1, "failed": 1}


@pytest.fixture
def user_file(tmp_path):
    rows = [
        {
            "id": "user_oriented_task_0",
            "motivation_app": "Grammarly",
            "instruction": "Fix the grammar.",
            "instances": [{"input": "He go home.", "output": "He goes home."}],
        },
        {"instruction": "Name three primary colours.", "output": "Red, yellow, blue."},
        {"id": "x", "instruction": "Write a haiku about tea.", "input": ""},
    ]
    path = tmp_path / "user.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_user_oriented_builder_reads_both_layouts(user_file, tmp_path):
    from lamini_lm.builders.user_oriented import load_user_oriented

    ds = load_user_oriented(user_file, cache_dir=str(tmp_path / "cache"))
    assert ds.column_names == ["id", "motivation_app", "instruction", "input", "output", "prompt"]
    assert ds["id"] == ["user_oriented_task_0", "1", "x"]
    assert ds[0]["prompt"] == "Fix the grammar.\n\nHe go home." and ds[0]["output"] == "He goes home."
    assert ds[1]["prompt"] == "Name three primary colours." and ds[2]["input"] == ""


def test_user_oriented_builder_names_file_and_row(tmp_path):
    from lamini_lm.builders.user_oriented import load_user_oriented

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"instruction": "ok"}) + "\n" + json.dumps({"input": "no instruction"}) + "\n")
    with pytest.raises(Exception, match=r"bad\.jsonl, row 2: field 'instruction'"):
        load_user_oriented(bad, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl"):
        load_user_oriented(tmp_path / "nowhere.jsonl")


def test_student_answers_for_both_families(tiny_gpt2, tiny_t5):
    from lamini_lm.inference import generate

    instructions = ["Name a colour.", "Add 2 and 3, then explain the result in one long sentence."]
    for model in (tiny_gpt2, tiny_t5):
        answers = generate(model, instructions, max_new_tokens=8, batch_size=2, device="cpu", do_sample=False)
        assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
        # Batched and one-by-one greedy answers agree: padding does not leak into what the student sees.
        single = [generate(model, [i], max_new_tokens=8, device="cpu", do_sample=False)[0] for i in instructions]
        assert answers == single


@pytest.mark.parametrize("wrapper", [True, False])
def test_student_sees_its_wrapper(tiny_gpt2, tiny_tokenizer, monkeypatch, wrapper):
    import transformers

    from lamini_lm.inference import generate
    from lamini_lm.prompts import ALPACA_WRAPPER

    seen = []
    load = transformers.AutoModelForCausalLM.from_pretrained

    def load_and_watch(*args, **kwargs):
        model = load(*args, **kwargs)
        model.register_forward_pre_hook(
            lambda m, a, kw: seen.append(tiny_tokenizer.decode(kw["input_ids"][0], skip_special_tokens=True)),
            with_kwargs=True,
        )
        return model

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", load_and_watch)
    generate(tiny_gpt2, ["Name a colour."], wrapper=wrapper, max_new_tokens=2, device="cpu", do_sample=False)
    expected = ALPACA_WRAPPER.format(instruction="Name a colour.") if wrapper else "Name a colour."
    assert seen[0] == expected


@pytest.mark.integration
def test_judge_end_to_end_against_a_real_server(teacher_server, tiny_gpt2, user_file, tmp_path, capsys):
    """The CLI answers with the student, asks the local judge through the cached client, counts and plots."""
    from lamini_lm.cli import main

    out = tmp_path / "judge"
    argv = ["judge", str(tiny_gpt2), "--instructions", str(user_file), "--output_dir", str(out)]
    argv += ["--base_url", teacher_server.base_url, "--model", teacher_server.model, "--max_tokens", "8"]
    argv += ["--max_new_tokens", "8", "--device", "cpu", "--name", "tiny"]
    assert main(argv) == 0
    judgements = [json.loads(line) for line in (out / "judgements.jsonl").read_text().splitlines()]
    assert len(judgements) == 3
    for j in judgements:
        # The tiny judge rambles: each reply is kept raw, and its grade is exactly what the rules read from it.
        assert j["raw"] is not None and j["error"] is None
        rating = parse_rating(j["raw"])
        assert (j["grade"], j["rule"]) == (rating.grade, rating.rule)
    summary = json.loads((out / "rubric.json").read_text())
    assert sum(summary["counts"].values()) == 3 and summary["judge"] == teacher_server.model
    assert (out / "rubric.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "answers.jsonl").exists()
    # A second run is served from the store: same judgements, nothing new sent.
    log_size = teacher_server.log_path.stat().st_size
    assert main(argv) == 0
    assert [json.loads(line) for line in (out / "judgements.jsonl").read_text().splitlines()] == judgements
    assert teacher_server.log_path.stat().st_size == log_size
    manifest = read_manifest(out)
    assert manifest.stage == "judge" and manifest.extra["counts"] == summary["counts"]
    assert manifest.input("model")["path"] == str(tiny_gpt2)


def _judge_cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "lamini_lm.cli", "judge", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.integration
def test_judge_offline_without_instructions_names_the_local_option(tiny_gpt2, tmp_path):
    proc = _judge_cli(str(tiny_gpt2), "--output_dir", str(tmp_path / "j"), "--base_url", "http://127.0.0.1:9/v1")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("lamini-lm judge: error: offline")
    assert "--instructions" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.integration
def test_judge_refuses_a_folder_holding_a_users_files(tmp_path, user_file):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"id": "1", "prompt": "Name a colour.", "answer": "Red."}\n')
    proc = _judge_cli("--answers", str(answers), "--output_dir", str(out), "--base_url", "http://127.0.0.1:9/v1")
    assert proc.returncode == 2, proc.stderr
    assert "notes.txt" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert (out / "notes.txt").read_text() == "keep me" and sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_judge_needs_a_student_or_answers():
    proc = _judge_cli("--base_url", "http://127.0.0.1:9/v1")
    assert proc.returncode == 2 and "give a student" in proc.stderr and "Traceback" not in proc.stderr
