"""Paper fidelity (issue 14): Alpaca's input kept end to end, clean vs contaminated scores, inference keeping the
wrapper's tail, and sampling shortfalls reported. Real processes on real files; tiny models from conftest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import datasets
import pytest

from lamini_lm.records import join_input

PASSIVE = "Rewrite the given sentence in passive voice."
SENTENCE = "The cat chased the mouse."
JOINED = f"{PASSIVE}\n\n{SENTENCE}"


def cli(*args, timeout=180) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "lamini_lm.cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def alpaca_file(tmp_path) -> Path:
    return write_jsonl(
        tmp_path / "alpaca.jsonl",
        [
            {"instruction": "Name three primary colours.", "input": "", "output": "Red, yellow, blue."},
            {"instruction": "Give a synonym.", "input": "", "output": "Glad."},
            {"instruction": "Say hi.", "input": "", "output": "Hi."},
            {"instruction": PASSIVE, "input": SENTENCE, "output": "The mouse was chased by the cat."},
        ],
    )


# ---- 1. Alpaca's input -----------------------------------------------------------------------------------------


def test_join_input_is_the_one_join_and_keeps_rows_without_input_unchanged():
    from lamini_lm.builders.user_oriented import user_prompt

    assert join_input(f" {PASSIVE} ", f"{SENTENCE}\n") == JOINED
    assert join_input("Say hi. ", "") == join_input("Say hi. ", None) == join_input("Say hi. ", "  ") == "Say hi. "
    # the judge's instruction set uses the same join
    assert user_prompt(PASSIVE, SENTENCE) == JOINED and user_prompt(" Say hi. ", "") == "Say hi."


def test_dry_run_shows_each_user_message_with_its_input(tmp_path):
    p = cli("generate", "responses", "--input", alpaca_file(tmp_path), "--instruction_source", "alpaca",
            "--output", tmp_path / "out", "--store", tmp_path / "s.sqlite", "--dry_run")  # fmt: skip
    assert p.returncode == 0, p.stderr
    out = p.stdout
    # the first three, plus the first with an input since none of those has one
    assert "user messages (4 of 4 shown; 1 with an input joined by join_input)" in out, out
    assert f"[4] {PASSIVE}\n\n      {SENTENCE}" in out, out
    assert "[1] Name three primary colours." in out and "4 requests to send" in out
    assert not (tmp_path / "out").exists()


def test_alpaca_builder_projects_its_input_into_the_lamini_instruction(tmp_path):
    from lamini_lm.builders import Alpaca

    builder = Alpaca(config_name="instructions", data_files=str(alpaca_file(tmp_path)), cache_dir=str(tmp_path / "c"))
    builder.download_and_prepare()
    ds = builder.as_dataset(split="train")
    assert ds.column_names == ["instruction", "instruction_source"]
    assert ds["instruction"][-1] == JOINED and ds["instruction"][0] == "Name three primary colours."
    assert set(ds["instruction_source"]) == {"alpaca"}
    default = Alpaca(data_files=str(alpaca_file(tmp_path)), cache_dir=str(tmp_path / "d"))
    default.download_and_prepare()
    assert default.as_dataset(split="train")["input"][-1] == SENTENCE  # the source config is Alpaca's own


@pytest.mark.parametrize("kind", ["jsonl", "saved"])
def test_instructions_builder_joins_an_input_column(tmp_path, kind):
    from lamini_lm.builders import Instructions

    rows = [
        {"instruction": PASSIVE, "input": SENTENCE, "response": "It was chased.", "instruction_source": "alpaca"},
        {"instruction": "Say hi.", "input": "", "response": "Hi.", "instruction_source": "alpaca"},
    ]
    if kind == "jsonl":
        path = write_jsonl(tmp_path / "lamini.jsonl", rows)
    else:
        path = tmp_path / "saved"
        datasets.Dataset.from_list(rows).save_to_disk(str(path))
    builder = Instructions(config_name="alpaca", generated=[str(path)], cache_dir=str(tmp_path / "c"))
    builder.download_and_prepare()
    ds = builder.as_dataset(split="train")
    assert ds.column_names == ["instruction", "response", "instruction_source"]
    assert ds["instruction"][:] == [JOINED, "Say hi."]


def test_generation_output_with_joined_inputs_dedups_on_the_whole_instruction(tmp_path):
    """Two Alpaca rows with the same instruction and different inputs are two instructions downstream."""
    from generation_fakes import FakeOpenAI
    from lamini_lm.generation import TeacherConfig, generate_responses

    rows = [{"instruction": PASSIVE, "input": SENTENCE}, {"instruction": PASSIVE, "input": "The dog ate the bone."}]
    fake = FakeOpenAI()
    with fake as url:
        cfg = TeacherConfig(base_url=url, model="fake", progress=False)
        ds, report = generate_responses(rows, config=cfg, store=tmp_path / "s.sqlite", return_report=True)
    assert len(set(ds["instruction"])) == 2 and len(fake.requests) == 2 and report.details["with_input"] == 2
    assert ds["instruction"][1] == f"{PASSIVE}\n\nThe dog ate the bone."


# ---- 7. sampling shortfalls --------------------------------------------------------------------------------------


def _p3_seeds():
    rows = [{"instruction": f"P3 {s} task {i}.", "instruction_source": "original_p3", "subset": s} for s, n in
            (("a", 4), ("b", 2), ("c", 1)) for i in range(n)]  # fmt: skip
    return rows + [{"instruction": f"P3 loose task {i}.", "instruction_source": "original_p3"} for i in range(2)]


@pytest.mark.parametrize(
    ("min_examples", "skipped"), [(1, {}), (2, {"p3/c": 1}), (3, {"p3/(no subset)": 2, "p3/b": 2, "p3/c": 1})]
)
def test_sampling_shortfalls_are_counted_and_small_pools_skipped(min_examples, skipped):
    from lamini_lm.generation.instructions import DEFAULT_MIN_EXAMPLES, load_seeds, plan_prompts, sampling_report
    from lamini_lm.generation.stage import InstructionArgs

    assert InstructionArgs(seeds="x").min_examples == DEFAULT_MIN_EXAMPLES == 2  # the CLI's default is the API's
    seeds = load_seeds(_p3_seeds())
    plans = plan_prompts(seeds, num_prompts=60, seed=3, min_examples=min_examples)
    report = sampling_report(seeds, plans, min_examples=min_examples)
    used = {(p.seeds[0].subset, len(p.seeds)) for p in plans}
    assert report["pools_below_min_examples"] == skipped
    assert all(len(p.seeds) >= min_examples for p in plans) and ("a", 3) in used
    assert report["short_prompts"] == sum(len(p.seeds) < 3 for p in plans)
    assert report["seeds_without_subset"] == {"p3": 2}
    if min_examples < 3:
        assert report["short_prompts"] > 0 and "p3/b" in report["short_prompts_by_pool"]
    else:
        assert report["short_prompts"] == 0 and used == {("a", 3)}


def test_no_pool_with_min_examples_seeds_is_a_usage_error_naming_the_pools():
    from lamini_lm.generation.instructions import load_seeds, plan_prompts

    with pytest.raises(ValueError, match=r"--min_examples 3 seeds \(self_instruct: 2\)"):
        plan_prompts(load_seeds(["Say hi.", "Say bye."]), min_examples=3)


@pytest.mark.integration
def test_instruction_run_warns_in_one_line_and_records_the_shortfalls(tmp_path):
    from generation_fakes import FakeOpenAI
    from lamini_lm.artifacts import read_manifest

    seeds = write_jsonl(tmp_path / "seeds.jsonl", _p3_seeds())
    with FakeOpenAI() as url:
        p = cli("generate", "instructions", "--seeds", seeds, "--num_prompts", "20", "--output", tmp_path / "out",
                "--store", tmp_path / "s.sqlite", "--base_url", url, "--model", "fake", "--no_progress")  # fmt: skip
    assert p.returncode == 0, p.stderr
    warnings = [line for line in p.stderr.splitlines() if "sampling:" in line]
    assert len(warnings) == 1, p.stderr
    assert "fewer than 3 seeds (p3/(no subset), p3/b)" in warnings[0] and "2 p3" in warnings[0], warnings
    assert "1 pool(s) with fewer than --min_examples 2 seeds were skipped" in warnings[0]
    manifest = read_manifest(tmp_path / "out")
    details = manifest.report("parse_instructions").details["sampling"]
    assert manifest.extra["sampling"] == details and details["pools_below_min_examples"] == {"p3/c": 1}
    assert details["short_prompts"] > 0 and manifest.config["instructions"]["min_examples"] == 2


# ---- 6. inference keeps the wrapper ----------------------------------------------------------------------------


def test_a_long_instruction_is_cut_before_the_wrapper_tail_at_inference(tiny_gpt2):
    from lamini_lm.families import get_family
    from lamini_lm.inference import generate, load_student

    model, tokenizer = load_student(tiny_gpt2)  # 512 positions
    seen = []
    model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs["input_ids"]), with_kwargs=True)
    long = "Summarise this text: " + " ".join(f"word{i % 50}" for i in range(3000))
    answers = generate(model, [long, "Say hi."], tokenizer=tokenizer, max_new_tokens=4, do_sample=False)
    assert len(answers) == 2
    first = seen[0]  # the prompt pass: both prompts, left-padded
    assert first.shape[1] <= 512 - 4
    for row in first:
        text = tokenizer.decode(row, skip_special_tokens=True)
        assert text.endswith("### Response:"), text[-80:]
    assert "Summarise this text: word0" in tokenizer.decode(first[0], skip_special_tokens=True)
    causal = get_family("causal")
    prompt, cut = causal.fit_prompt(tokenizer, long, 100)
    assert cut and prompt.endswith("\n\n### Response:") and len(tokenizer(prompt)["input_ids"]) <= 100
    assert causal.fit_prompt(tokenizer, "Say hi.", 100) == (causal.wrap("Say hi."), False)


# ---- 4. clean vs contaminated scores ---------------------------------------------------------------------------


def _demo(name: str) -> str:
    from lamini_lm.evaluation.demo_tasks import SHAPED_LIKE

    return next(t for t, paper in SHAPED_LIKE.items() if paper == name)  # "sciq" -> "demo_choice"


def test_evaluate_clean_against_scores_each_task_on_its_clean_subset_too(tiny_gpt2, tmp_path, capsys):
    from lamini_lm.artifacts import read_manifest
    from lamini_lm.cli import main
    from lamini_lm.evaluation import load_results
    from lamini_lm.evaluation.demo_tasks import write_demo_tasks

    folder = write_demo_tasks(tmp_path / "tasks", n=16)
    sciq, rte, record = _demo("sciq"), _demo("rte"), _demo("record")
    questions = [json.loads(line)["question"] for line in (folder / f"{sciq}.jsonl").read_text().splitlines()]
    leaked = questions[:3]  # three benchmark questions copied into the training data, inside other text
    train = tmp_path / "train.jsonl"
    write_jsonl(train, [{"instruction": f"Quiz time. {q} Think.", "response": "Seven."} for q in leaked]
                + [{"instruction": "Name three primary colours.", "response": "Red, yellow and blue."}])  # fmt: skip
    out = tmp_path / "eval"
    argv = ["evaluate", str(tiny_gpt2), "--tasks", sciq, rte, record, "--include_path", str(folder)]
    argv += ["--no-include-defaults", "--device", "cpu", "--bootstrap_iters", "0", "--output_dir", str(out)]
    argv += ["--clean_against", str(train), "--clean_ngram", "4"]  # the demo items are a few words long
    assert main(argv) == 0
    results = load_results(out)
    dirty = sum(q in leaked for q in questions)
    s = results["tasks"][sciq]
    assert (s["clean"]["contaminated"], s["clean"]["n"], s["n"]) == (dirty, 16 - dirty, 16)
    # the clean and contaminated scores split the full one (acc_norm is a mean over items)
    whole = s["clean"]["value"] * s["clean"]["n"] + s["clean"]["contaminated_value"] * dirty
    assert whole == pytest.approx(s["value"] * 16)
    assert results["tasks"][rte]["clean"] == {
        "value": pytest.approx(results["tasks"][rte]["value"]),
        "n": 16,
        "contaminated": 0,
        "contaminated_value": None,
    }
    assert 0 <= results["tasks"][record]["clean"]["value"] <= 1  # f1: lm-eval's own aggregation of the items
    assert results["clean_against"] == {"dataset": str(train), "ngram": 4, "columns": ["instruction", "response"]}
    table = (out / "results.md").read_text()
    assert (
        f"| {sciq} | acc_norm | {100 * s['value']:.1f} | 16 | {100 * s['clean']['value']:.1f} | {16 - dirty} |"
        in table
    )
    assert not (out / "samples.jsonl").exists()  # per-item values were needed, not asked to be written
    manifest = read_manifest(out)
    assert manifest.extra["tasks"][sciq]["clean"] == s["clean"] and manifest.input("clean_against")["path"]
    assert "Clean subsets" in capsys.readouterr().out


def test_clean_against_a_file_without_instructions_fails_before_scoring(tiny_gpt2, tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"text": "hello"}])
    p = cli("evaluate", tiny_gpt2, "--tasks", "sciq", "--clean_against", bad, "--output_dir", tmp_path / "e")
    assert p.returncode == 1 and "--clean_against" in p.stderr and "'instruction'" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and not (tmp_path / "e").exists()


# ---- 5. recipes -------------------------------------------------------------------------------------------------


def test_decoder_only_recipes_warm_up_three_percent_as_alpaca_and_need_transformers_5():
    import configparser

    import transformers
    from packaging.requirements import Requirement

    from lamini_lm.config import load_yaml
    from lamini_lm.recipes import list_recipes, recipe_path

    for name in list_recipes():
        raw, text = load_yaml(recipe_path(name)), recipe_path(name).read_text()
        if raw["family"] == "causal":
            line = next(ln for ln in text.splitlines() if ln.startswith("warmup_steps:"))
            assert raw["warmup_steps"] == 0.03 and "Alpaca's train.py" in line, name
    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).parents[1] / "setup.cfg")
    (req,) = [Requirement(r) for r in cfg["options"]["install_requires"].split("\n") if r.startswith("transformers")]
    floor = next(s.version for s in req.specifier if s.operator == ">=")
    assert int(floor.split(".")[0]) >= 5 and transformers.__version__ in req.specifier
