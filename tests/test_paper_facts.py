"""Every fact of the paper (SPEC.md) that the library encodes, checked against the paper's own numbers and text.

The literals below are copied from the paper's tables and text, not from the library, so a slip in either shows.
"""

from __future__ import annotations

import re

import pytest

from lamini_lm.paper import (
    HUMAN_EVAL_SIZE,
    PAPER_AVERAGES,
    PAPER_RUBRIC,
    PAPER_SCORES,
    PAPER_TASKS,
    paper_average,
    paper_metric,
)

# SPEC 7: task -> (lm-eval task, n, metric, dataset, config, split), in the paper's order.
SPEC_TASKS = [
    ("OpenBookQA", "openbookqa", 500, "acc_norm", "allenai/openbookqa", "main", "test"),
    ("SciQ", "sciq", 1000, "acc_norm", "allenai/sciq", None, "test"),
    ("RACE", "race", 1045, "acc", "EleutherAI/race", "high", "test"),
    ("ARC-Challenge", "arc_challenge", 1172, "acc_norm", "allenai/ai2_arc", "ARC-Challenge", "test"),
    ("PIQA", "piqa", 1838, "acc_norm", "baber/piqa", None, "validation"),
    ("ReCoRD", "record", 10000, "f1", "aps/super_glue", "record", "validation"),
    ("SST-2", "sst2", 872, "acc", "nyu-mll/glue", "sst2", "validation"),
    ("MRPC", "mrpc", 408, "acc", "nyu-mll/glue", "mrpc", "validation"),
    ("RTE", "rte", 277, "acc", "nyu-mll/glue", "rte", "validation"),
    ("MultiNLI", "mnli", 9815, "acc", "nyu-mll/glue", "mnli", "validation_matched"),
    ("MultiNLI mismatched", "mnli_mismatch", 9832, "acc", "nyu-mll/glue", "mnli", "validation_mismatched"),
    ("WSC", "wsc273", 273, "acc", "lighteval/winograd_wsc", "wsc273", "test"),
    ("WinoGrande", "winogrande", 1267, "acc", "allenai/winogrande", "winogrande_xl", "validation"),
    ("WiC", "wic", 638, "acc", "aps/super_glue", "wic", "validation"),
    ("HellaSwag", "hellaswag", 10042, "acc_norm", "Rowan/hellaswag", None, "validation"),
]

# SPEC 7, the per-task table, column by column (paper order of the tasks above), then the printed Average.
SPEC_COLUMNS = {
    "T5-738M": ([32.8, 82.4, 31.5, 25.4, 55.9, 73.1, 50.2, 34.3, 79.8, 61.3, 63.1, 60.4, 55.2, 49.4, 38.9], 52.9),
    "LaMini-T5-738M": (
        [36.0, 84.5, 32.6, 29.0, 67.2, 68.7, 90.3, 71.1, 57.0, 54.7, 55.8, 59.0, 54.9, 50.5, 40.6],
        56.8,
    ),
    "Flan-T5-783M": ([31.2, 93.8, 40.9, 30.7, 72.2, 76.7, 94.0, 82.6, 87.4, 72.4, 72.0, 66.7, 59.9, 64.7, 48.7], 66.3),
    "LaMini-Flan-T5-783M": (
        [34.0, 86.7, 32.8, 31.8, 70.6, 70.4, 93.1, 77.9, 65.0, 61.4, 61.0, 64.1, 56.0, 63.8, 43.7],
        60.8,
    ),
    "Cerebras-GPT-1.3B": (
        [29.0, 73.0, 30.3, 25.3, 66.8, 75.0, 51.3, 68.4, 53.1, 35.2, 35.4, 62.3, 51.9, 50.2, 38.4],
        49.7,
    ),
    "LaMini-Cerebras-1.3B": (
        [34.0, 79.4, 32.9, 30.3, 66.9, 66.3, 90.3, 71.3, 65.7, 47.4, 49.2, 57.1, 51.8, 50.2, 38.7],
        55.4,
    ),
    "GPT-2-XL": ([32.0, 76.1, 33.1, 28.5, 70.5, 84.4, 49.1, 63.2, 52.3, 36.5, 37.0, 73.3, 58.3, 49.8, 50.9], 53.0),
    "LaMini-GPT-1.5B": (
        [39.8, 80.4, 39.1, 35.8, 71.3, 78.5, 93.5, 76.0, 67.9, 67.5, 69.3, 69.6, 56.0, 52.4, 48.3],
        63.0,
    ),
    "LLaMA-7B": ([42.4, 66.3, 39.9, 41.4, 77.5, 91.4, 53.0, 68.4, 53.4, 34.4, 35.6, 80.6, 67.0, 50.0, 73.0], 58.3),
    "Alpaca-7B": ([43.2, 69.6, 42.2, 41.8, 76.0, 87.4, 85.8, 74.3, 67.1, 38.8, 39.6, 77.3, 65.7, 57.5, 68.7], 62.3),
}

# SPEC 7: the averages read off the paper's plot, for the students without per-task numbers.
SPEC_PLOT_AVERAGES = {
    "LaMini-Flan-T5-77M": 51.3,
    "LaMini-Flan-T5-248M": 58.9,
    "LaMini-Flan-T5-783M": 60.8,
    "LaMini-T5-61M": 47.6,
    "LaMini-T5-223M": 55.8,
    "LaMini-T5-738M": 56.8,
    "LaMini-GPT-124M": 50.6,
    "LaMini-GPT-774M": 60.8,
    "LaMini-GPT-1.5B": 63.0,
    "LaMini-Cerebras-111M": 45.5,
    "LaMini-Cerebras-256M": 48.9,
    "LaMini-Cerebras-590M": 52.6,
    "LaMini-Cerebras-1.3B": 55.4,
    "LaMini-Neo-125M": 46.2,
    "LaMini-Neo-1.3B": 59.0,
    "Alpaca-7B": 62.3,
    "LLaMA-7B": 58.3,
}

# SPEC 7: human evaluation, A/B/C/D counts of 114 answers.
SPEC_RUBRIC = {
    "LaMini-Flan-T5-783M": (45, 25, 30, 14),
    "LaMini-T5-738M": (44, 28, 30, 12),
    "Alpaca-7B": (39, 34, 29, 12),
    "LaMini-Flan-T5-248M": (34, 29, 35, 16),
    "LaMini-GPT-1.5B": (29, 28, 34, 23),
    "LLaMA-7B": (3, 10, 19, 82),
    "GPT-2-XL": (0, 0, 19, 95),
}

# SPEC 6: recipe -> (base model, family, effective batch size).
SPEC_RECIPES = {
    "lamini-t5-61m": ("t5-small", "seq2seq", 1024),
    "lamini-t5-223m": ("t5-base", "seq2seq", 1024),
    "lamini-t5-738m": ("t5-large", "seq2seq", 1024),
    # the released Flan-T5 cards show 512 = 128 x 4, which the recipes follow
    "lamini-flan-t5-77m": ("google/flan-t5-small", "seq2seq", 512),
    "lamini-flan-t5-248m": ("google/flan-t5-base", "seq2seq", 512),
    "lamini-flan-t5-783m": ("google/flan-t5-large", "seq2seq", 512),
    "lamini-cerebras-111m": ("cerebras/Cerebras-GPT-111M", "causal", 1024),
    "lamini-cerebras-256m": ("cerebras/Cerebras-GPT-256M", "causal", 1024),
    "lamini-cerebras-590m": ("cerebras/Cerebras-GPT-590M", "causal", 1024),
    "lamini-cerebras-1.3b": ("cerebras/Cerebras-GPT-1.3B", "causal", 1024),
    "lamini-gpt-124m": ("gpt2", "causal", 1024),
    "lamini-gpt-774m": ("gpt2-large", "causal", 1024),
    "lamini-gpt-1.5b": ("gpt2-xl", "causal", 1024),
    "lamini-neo-125m": ("EleutherAI/gpt-neo-125m", "causal", 1024),
    "lamini-neo-1.3b": ("EleutherAI/gpt-neo-1.3B", "causal", 1024),
    "lamini-llama-7b": ("huggyllama/llama-7b", "causal", 1024),  # LLaMA-7B; the paper names no Hub id
}


# ---- the 15 tasks ----------------------------------------------------------------------------------------------


def test_the_fifteen_tasks_with_n_metric_dataset_config_and_split():
    got = [(t.name, t.task, t.n, t.metric, t.dataset, t.dataset_config, t.split) for t in PAPER_TASKS]
    assert got == SPEC_TASKS
    assert {t: paper_metric(t) for _, t, *_ in SPEC_TASKS} == {t: m for _, t, _, m, *_ in SPEC_TASKS}


@pytest.fixture(scope="module")
def lm_eval_index():
    """lm-eval's index of its built-in tasks: YAML files only, nothing downloaded."""
    from lm_eval.tasks import TaskManager

    return TaskManager().task_index


def test_the_fifteen_task_names_resolve_in_the_installed_lm_eval(lm_eval_index):
    for name, task, _, metric, dataset, config, split in SPEC_TASKS:
        entry = lm_eval_index.get(task)
        assert entry is not None, f"{name}: lm-eval has no task {task!r}"
        cfg = entry.cfg or {}
        # the paper's metric is one lm-eval computes for it, on the data and split the library names
        assert metric in [m["metric"] for m in cfg.get("metric_list", [])], task
        assert (cfg.get("dataset_path"), cfg.get("dataset_name")) == (dataset, config), task
        assert (cfg.get("test_split") or cfg.get("validation_split")) == split, task
        assert cfg.get("output_type") == "multiple_choice", task


def test_evaluation_is_zero_shot_even_for_a_task_that_asks_for_shots(tiny_gpt2, tmp_path):
    """A task YAML asking for 3 shots: evaluate_model still shows the model the bare question, no examples."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from lamini_lm.evaluation import evaluate_model
    from lamini_lm.evaluation.demo_tasks import write_demo_tasks

    tasks = write_demo_tasks(tmp_path / "tasks", n=8)
    yaml = (tasks / "demo_entailment.yaml").read_text().replace("task: demo_entailment", "task: shots_rte")
    (tasks / "shots_rte.yaml").write_text(yaml + "num_fewshot: 3\nfewshot_split: test\n")
    run = {"limit": 2, "bootstrap_iters": 0, "log_samples": True}
    results = evaluate_model(
        tiny_gpt2, ["shots_rte"], include_path=tasks, include_defaults=False, device="cpu", wrapper=False, **run
    )
    assert results["lm_eval"]["n-shot"]["shots_rte"] == 0
    contexts = [s["arguments"][0][0] for s in results["samples"]["shots_rte"]]
    assert contexts and all(c.count("Question:") == 1 for c in contexts)
    # the control: lm-eval left to the task's own setting does add the 3 examples
    from lamini_lm.evaluation import make_lm

    plain = lm_eval.simple_evaluate(
        model=make_lm(tiny_gpt2, wrapper=False, device="cpu"),
        tasks=["shots_rte"],
        task_manager=TaskManager(include_path=str(tasks), include_defaults=False),
        **run,
    )
    assert all(s["arguments"][0][0].count("Question:") == 4 for s in plain["samples"]["shots_rte"])


# ---- the published numbers -------------------------------------------------------------------------------------


def test_per_task_numbers_are_the_papers_table():
    order = [t for _, t, *_ in SPEC_TASKS]
    assert list(PAPER_SCORES) == list(SPEC_COLUMNS)
    for model, (column, _) in SPEC_COLUMNS.items():
        assert PAPER_SCORES[model] == dict(zip(order, column)), model


def test_each_columns_mean_reproduces_its_printed_average():
    for model, (_, printed) in SPEC_COLUMNS.items():
        assert sum(PAPER_SCORES[model].values()) / 15 == pytest.approx(printed, abs=0.1), model
        assert PAPER_AVERAGES[model] == printed and paper_average(model) == printed
    # over a subset of the tasks the paper's average is its per-task numbers' mean, not the 15-task one
    assert paper_average("GPT-2-XL", ["sciq", "rte"]) == round((76.1 + 52.3) / 2, 1)
    assert paper_average("LaMini-GPT-124M", ["sciq"]) is None  # no per-task numbers published


def test_stored_averages_are_the_papers():
    for model, value in SPEC_PLOT_AVERAGES.items():
        assert PAPER_AVERAGES[model] == value, model
    # where the plot and the table both give an average they agree
    for model, (_, printed) in SPEC_COLUMNS.items():
        assert SPEC_PLOT_AVERAGES.get(model, printed) == printed
    assert set(PAPER_AVERAGES) == set(SPEC_PLOT_AVERAGES) | set(SPEC_COLUMNS)


def test_rubric_counts_seven_models_four_grades_of_114():
    assert HUMAN_EVAL_SIZE == 114
    assert {m: tuple(c[g] for g in "ABCD") for m, c in PAPER_RUBRIC.items()} == SPEC_RUBRIC
    assert all(list(c) == ["A", "B", "C", "D"] for c in PAPER_RUBRIC.values())
    assert all(sum(c.values()) == HUMAN_EVAL_SIZE for c in PAPER_RUBRIC.values())


def test_grade_definitions_are_the_papers_text():
    from lamini_lm.evaluation.judge import GRADE_DEFINITIONS, JUDGE_TEMPLATE

    assert GRADE_DEFINITIONS == {
        "A": "valid, acceptable and satisfying",
        "B": "acceptable but has minor errors that can be improved",
        "C": "relevant and responds to the instruction, but has significant errors in the content",
        "D": "invalid and unacceptable",
    }
    for grade, text in GRADE_DEFINITIONS.items():
        assert f"{grade}: the answer is {text};" in JUDGE_TEMPLATE


# ---- generation ------------------------------------------------------------------------------------------------


def test_default_teacher_is_gpt_35_turbo():
    from lamini_lm.generation import TeacherConfig

    assert TeacherConfig().model == "gpt-3.5-turbo"


def _seeds(source: str, subsets: tuple[str, ...], per_subset: int = 4) -> list[dict]:
    return [
        {"instruction": f"{source} {s} task {i}.", "instruction_source": source, "subset": s}
        for s in subsets
        for i in range(per_subset)
    ]


@pytest.mark.parametrize(
    ("source", "n", "label"),
    [("original_flan", 10, "generated_flan"), ("original_p3", 10, "generated_p3")],
)
def test_flan_and_p3_seeds_ask_for_ten_from_three_of_one_subset(source, n, label):
    from lamini_lm.generation.instructions import load_seeds, plan_prompts

    plans = plan_prompts(load_seeds(_seeds(source, ("a", "b", "c"))), num_prompts=12, seed=1)
    for plan in plans:
        assert plan.n == n and str(getattr(plan.source, "value", plan.source)) == label
        assert len(plan.seeds) == 3 and len({s.subset for s in plan.seeds}) == 1
        assert f"Generate {n} diverse examples that are similar to the provided examples." in plan.prompt
        assert len(re.findall(r"^<example>.+</example>$", plan.prompt, re.MULTILINE)) == 3


def test_self_instruct_seeds_ask_for_twenty():
    from lamini_lm.generation.instructions import load_seeds, plan_prompts

    seeds = load_seeds([f"Self-Instruct task {i}." for i in range(5)])
    (example,) = plan_prompts(seeds, num_prompts=1)
    (topic,) = plan_prompts(seeds, strategy="topic", topics=["Infantry", "Conidae", "Design bureaus"], num_prompts=1)
    assert example.n == topic.n == 20 and "Generate 20 diverse examples" in example.prompt
    assert str(getattr(example.source, "value", example.source)) == "self_instruct_without_topic"
    assert str(getattr(topic.source, "value", topic.source)) == "self_instruct_with_topic"


@pytest.mark.integration
def test_alpaca_rows_are_answered_with_their_input(tmp_path):
    """SPEC 2: a row with an ``input`` is asked with it, and stored with it (what every later stage reads)."""
    import json
    import subprocess
    import sys

    import datasets

    from generation_fakes import FakeOpenAI

    rows = [
        {"instruction": "Rewrite the given sentence in passive voice.", "input": "The cat chased the mouse."},
        {"instruction": "Name three primary colours.", "input": "", "output": "-"},
    ]
    alpaca = tmp_path / "alpaca.jsonl"
    alpaca.write_text("".join(json.dumps(r) + "\n" for r in rows))
    asked = "Rewrite the given sentence in passive voice.\n\nThe cat chased the mouse."
    fake = FakeOpenAI()
    with fake as url:
        cmd = [sys.executable, "-m", "lamini_lm.cli", "generate", "responses", "--input", str(alpaca)]
        cmd += ["--instruction_source", "alpaca", "--output", str(tmp_path / "out"), "--store", str(tmp_path / "s")]
        cmd += ["--base_url", url, "--model", "fake", "--no_progress"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert sorted(fake.requests) == sorted([asked, "Name three primary colours."])
    out = datasets.load_from_disk(str(tmp_path / "out"))
    assert out["instruction"][:] == [asked, "Name three primary colours."]
    assert out["response"][0].startswith("Answer: ") and "The cat chased the mouse." in out["response"][0]
    from lamini_lm.artifacts import read_manifest

    assert read_manifest(tmp_path / "out").report("responses").details["with_input"] == 1


# ---- training --------------------------------------------------------------------------------------------------


def test_every_recipe_has_the_papers_base_model_family_and_batch_size():
    from lamini_lm.config import load_yaml
    from lamini_lm.recipes import list_recipes, recipe_path

    names = list_recipes()
    # the herd's recipes are exactly the paper's; variants beyond the paper (dialogue, distillation) are suffixed
    assert sorted(n for n in names if not n.endswith(("-chat", "-kd"))) == sorted(SPEC_RECIPES)
    # the token-level distillation recipes: the paper's student, base model and batch, plus a teacher
    kd = {n: SPEC_RECIPES[n.removesuffix("-kd")] for n in names if n.endswith("-kd")}
    assert sorted(kd) == ["lamini-flan-t5-77m-kd", "lamini-gpt-124m-kd"]
    for name, (base, family, batch) in {**SPEC_RECIPES, **kd}.items():
        path = recipe_path(name)
        raw = load_yaml(path)
        assert (raw["model_name_or_path"], raw["family"]) == (base, family), name
        # effective batch = per_device x grad_accum x the world size the recipe's comment expects
        comment = next(ln for ln in path.read_text().splitlines() if ln.startswith("# effective batch"))
        per, acc, world, total = (int(x) for x in re.search(r"= (\d+) x (\d+) x (\d+) = (\d+)", comment).groups())
        assert (per, acc) == (raw["per_device_train_batch_size"], raw["gradient_accumulation_steps"]), name
        assert per * acc * world == total == batch, name


def test_encoder_decoder_students_train_with_seq2seq_trainer(tiny_t5, tiny_gpt2, tmp_path):
    from datasets import Dataset
    from transformers import Seq2SeqTrainer

    from lamini_lm.train import load_recipe

    data = tmp_path / "data"
    Dataset.from_dict(
        {
            "instruction": ["Say hi.", "Name a colour."] * 4,
            "response": ["Hi.", "Red."] * 4,
            "instruction_source": ["alpaca"] * 8,
        }
    ).save_to_disk(str(data))
    kinds = {}
    for name, model in (("lamini-flan-t5-77m", tiny_t5), ("lamini-gpt-124m", tiny_gpt2)):
        recipe = load_recipe(
            name,
            model_name_or_path=str(model),
            dataset_name=str(data),
            output_dir=str(tmp_path / name),
            bf16=False,
            eval_split_size=0,
            max_eval_samples=0,
            train_sampling_strategy="random",
        )
        kinds[name] = isinstance(recipe.build(), Seq2SeqTrainer)
    assert kinds == {"lamini-flan-t5-77m": True, "lamini-gpt-124m": False}


# ---- the dataset card ------------------------------------------------------------------------------------------


def test_dataset_card_says_language_en():
    import datasets
    from huggingface_hub import DatasetCard

    from lamini_lm.publishing.dataset import dataset_card

    ds = datasets.Dataset.from_dict(
        {"instruction": ["Name a colour."], "response": ["Red."], "instruction_source": ["alpaca"]}
    )
    meta = DatasetCard(str(dataset_card(ds))).data.to_dict()
    language = meta["language"]
    assert ([language] if isinstance(language, str) else language) == ["en"]
    assert meta["license"] == "cc-by-nc-4.0" and meta["task_categories"] == ["text2text-generation"]
