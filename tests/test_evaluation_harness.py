"""lamini-lm evaluate: both families through lm-eval, the wrapper reaching the model, metrics, average, files."""

from __future__ import annotations

import json

import pytest

from lamini_lm.evaluation import detect_family, evaluate_model, load_results, make_lm
from lamini_lm.evaluation.demo_tasks import DEMO_TASKS, write_demo_tasks
from lamini_lm.prompts import ALPACA_WRAPPER

RUN = {"include_defaults": False, "device": "cpu", "bootstrap_iters": 0}


@pytest.fixture(scope="module")
def demo_tasks(tmp_path_factory):
    return write_demo_tasks(tmp_path_factory.mktemp("demo_tasks"), n=12)


def _capture_inputs(lm):
    """Record the token ids every forward pass of the torch model receives (what the model really sees)."""
    seen = []

    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None:
            seen.extend(lm.tokenizer.batch_decode(ids, skip_special_tokens=True))

    handle = lm.model.register_forward_pre_hook(hook, with_kwargs=True)
    return seen, handle


def test_family_detected_from_config(tiny_gpt2, tiny_t5):
    assert detect_family(tiny_gpt2) == "causal"
    assert detect_family(tiny_t5) == "seq2seq"


def test_causal_student_scores_every_task_with_the_paper_metric(tiny_gpt2, demo_tasks):
    results = evaluate_model(tiny_gpt2, DEMO_TASKS, include_path=demo_tasks, **RUN)
    tasks = results["tasks"]
    assert set(tasks) == set(DEMO_TASKS)
    # Demo tasks report their first listed metric: the one of the paper task each is shaped like.
    assert {t: tasks[t]["metric"] for t in tasks} == {
        "demo_choice": "acc_norm",
        "demo_entailment": "acc",
        "demo_cloze": "f1",
        "demo_completion": "acc_norm",
        "demo_generate": "exact_match",
    }
    raw = results["lm_eval"]["results"]
    for task, r in tasks.items():
        assert r["value"] == raw[task][f"{r['metric']},none"]
        assert r["n"] == 12
    assert results["average"] == pytest.approx(sum(r["value"] for r in tasks.values()) / len(tasks))
    assert results["family"] == "causal" and results["wrapper"] is True
    assert results["prompt_hash"] is not None


def test_wrapper_reaches_the_causal_model(tiny_gpt2, demo_tasks):
    lm = make_lm(tiny_gpt2, batch_size=4, device="cpu")
    seen, handle = _capture_inputs(lm)
    try:
        evaluate_model(lm, ["demo_choice", "demo_generate"], include_path=demo_tasks, limit=3, **RUN)
    finally:
        handle.remove()
    prefix = ALPACA_WRAPPER.split("{instruction}")[0]
    mc = [s for s in seen if "Question: What is" in s]
    gen = [s for s in seen if "Repeat the number" in s]
    assert mc and gen, "both loglikelihood and generation requests reach the model"
    assert all(s.startswith(prefix + "Question: What is") for s in mc)
    assert all("\n\n### Response:" in s for s in mc + gen)
    assert all(s.startswith(prefix + "Repeat the number") for s in gen)


def test_no_wrapper_shows_raw_context(tiny_gpt2, demo_tasks):
    lm = make_lm(tiny_gpt2, wrapper=False, batch_size=4, device="cpu")
    seen, handle = _capture_inputs(lm)
    try:
        results = evaluate_model(lm, ["demo_choice"], include_path=demo_tasks, limit=3, **RUN)
    finally:
        handle.remove()
    assert seen and all(s.startswith("Question: What is") for s in seen)
    assert not any("### Instruction" in s for s in seen)
    assert results["wrapper"] is False and results["prompt_hash"] is None


def test_seq2seq_student_gets_seq2seq_backend_and_raw_instruction(tiny_t5, demo_tasks):
    lm = make_lm(tiny_t5, batch_size=4, device="cpu")
    assert lm.backend == "seq2seq" and lm.family == "seq2seq"
    seen, handle = _capture_inputs(lm)
    try:
        results = evaluate_model(lm, ["demo_choice", "demo_entailment"], include_path=demo_tasks, **RUN)
    finally:
        handle.remove()
    encoder_inputs = [s for s in seen if "Question:" in s]
    assert encoder_inputs and not any("### Instruction" in s for s in seen)
    assert results["family"] == "seq2seq" and set(results["tasks"]) == {"demo_choice", "demo_entailment"}


def test_equals_plain_lm_eval_with_the_wrapper_in_the_task(tiny_gpt2, demo_tasks, tmp_path):
    """The harness on plain tasks == raw simple_evaluate on tasks whose YAML carries the Alpaca template:
    same prompts, same log-likelihood of every choice, same metrics."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    wrapped_tasks = write_demo_tasks(tmp_path / "wrapped", n=12, template=ALPACA_WRAPPER)
    tasks = ["demo_choice", "demo_entailment", "demo_cloze"]
    ours = evaluate_model(tiny_gpt2, tasks, include_path=demo_tasks, batch_size=4, log_samples=True, **RUN)
    raw = lm_eval.simple_evaluate(
        model=HFLM(pretrained=str(tiny_gpt2), backend="causal", device="cpu", batch_size=4),
        tasks=tasks,
        task_manager=TaskManager(include_path=str(wrapped_tasks), include_defaults=False),
        bootstrap_iters=0,
        random_seed=0,
        numpy_random_seed=0,
        torch_random_seed=0,
        fewshot_random_seed=0,
    )
    for task in tasks:
        ours_rows, raw_rows = ours["samples"][task], raw["samples"][task]
        assert [r["arguments"] for r in ours_rows] == [[list(a) for a in r["arguments"]] for r in raw_rows]
        assert [r["filtered_resps"] for r in ours_rows] == [r["filtered_resps"] for r in raw_rows]
        metrics = {k: v for k, v in raw["results"][task].items() if k.endswith(",none") and "stderr" not in k}
        assert metrics and all(ours["lm_eval"]["results"][task][k] == v for k, v in metrics.items()), task


def test_unknown_metric_override_names_the_task(tiny_gpt2, demo_tasks):
    with pytest.raises(KeyError, match="demo_choice.*bleu"):
        evaluate_model(
            tiny_gpt2, ["demo_choice"], include_path=demo_tasks, limit=2, metrics={"demo_choice": "bleu"}, **RUN
        )


def test_cli_writes_json_markdown_and_csv(tiny_gpt2, demo_tasks, tmp_path, capsys):
    from lamini_lm.cli import main

    out = tmp_path / "eval"
    argv = ["evaluate", str(tiny_gpt2), "--tasks", "demo_choice", "demo_entailment", "--include_path", str(demo_tasks)]
    argv += ["--no-include-defaults", "--device", "cpu", "--bootstrap_iters", "0", "--output_dir", str(out)]
    argv += ["--log_samples", "--limit", "4"]
    assert main(argv) == 0
    results = load_results(out / "results.json")
    assert set(results["tasks"]) == {"demo_choice", "demo_entailment"}
    table = (out / "results.md").read_text()
    assert "| demo_choice | acc_norm |" in table and "| Average |" in table
    assert (out / "results.csv").read_text().splitlines()[0] == f"task,metric,{tiny_gpt2.name}"
    assert "Average" in capsys.readouterr().out
    json.loads((out / "results.json").read_text())  # plain JSON, no NaN or objects
    from lamini_lm.artifacts import read_manifest

    manifest = read_manifest(out)  # the evaluation is an artifact whose input is the student
    assert manifest.stage == "evaluate" and manifest.input("model")["path"] == str(tiny_gpt2.resolve())
    assert manifest.extra["average"] == results["average"] and set(manifest.extra["tasks"]) == {
        "demo_choice",
        "demo_entailment",
    }
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 8 and {s["task"] for s in samples} == {"demo_choice", "demo_entailment"}
    # The logged request is what the model was shown: the wrapped context.
    assert all(s["arguments"][0][0].startswith(ALPACA_WRAPPER.split("{instruction}")[0]) for s in samples)


def test_registered_with_plain_lm_eval(tiny_gpt2, demo_tasks):
    """`model="lamini"` works through lm-eval's own entry point, string model_args included."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    import lamini_lm.evaluation.lm  # noqa: F401  (registers "lamini")

    raw = lm_eval.simple_evaluate(
        model="lamini",
        model_args=f"pretrained={tiny_gpt2},family=causal,wrap=False",
        tasks=["demo_entailment"],
        limit=2,
        device="cpu",
        task_manager=TaskManager(include_path=str(demo_tasks), include_defaults=False),
        bootstrap_iters=0,
    )
    assert raw["config"]["lamini_family"] == "causal" and raw["config"]["lamini_wrapper"] is False
    assert not raw["samples"]["demo_entailment"][0]["arguments"][0][0].startswith("Below is an instruction")


@pytest.mark.parametrize("model", ["nope_model", "runs/nope"])
def test_cli_missing_model_is_one_line(model, tmp_path, capsys, monkeypatch):
    from lamini_lm.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", model, "--output_dir", str(tmp_path / "eval")]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"lamini-lm evaluate: error: MODEL {model}: ") and ("not found" in line or "cache" in line)
    assert not (tmp_path / "eval").exists()


@pytest.mark.integration
def test_task_data_out_of_reach_is_one_line_naming_local_tasks(tiny_t5, tmp_path):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "lamini_lm.cli", "evaluate", str(tiny_t5), "--tasks", "sciq", "--limit", "2"]
    proc = subprocess.run([*cmd, "--output_dir", str(tmp_path / "e")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "--include_path" in errors[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "e").exists()


def test_demo_tasks_name_their_data_by_absolute_path(tmp_path, monkeypatch):
    from lamini_lm.evaluation.demo_tasks import write_demo_tasks

    monkeypatch.chdir(tmp_path)
    folder = write_demo_tasks("tasks", n=2)
    text = (folder / "demo_choice.yaml").read_text()
    assert str(tmp_path / "tasks" / "demo_choice.jsonl") in text  # evaluating from another folder still finds it
