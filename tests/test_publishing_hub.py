"""Publishing: a student pushed to a Hub-compatible app loads back with plain from_pretrained and answers the same."""

from __future__ import annotations

import json
import logging
import re
import shutil

import pytest
import yaml

import lamini_lm
from lamini_lm.publishing.model import (
    PublishError,
    _one_entry_per_task,
    build_model_card,
    find_eval_results,
    format_parameters,
    publish,
    published_files,
)

INSTRUCTIONS = ["Name three primary colours.", "Explain why the sky is blue.", "Add 2 and 3."]


@pytest.fixture(params=["t5", "gpt2"])
def student(request, tmp_path):
    """A copy of a tiny student (both families), as a training run leaves it."""
    src = request.getfixturevalue(f"tiny_{request.param}")
    dst = tmp_path / f"student-{request.param}"
    shutil.copytree(src, dst)
    return dst


def _card_meta(text: str) -> dict:
    match = re.match(r"^---\n(.*?)\n---\n", text, flags=re.S)
    assert match, "card has no YAML front matter"
    return yaml.safe_load(match.group(1))


@pytest.mark.integration
def test_push_then_from_pretrained_gives_identical_generations(student, fake_hub, caplog):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    caplog.set_level(logging.DEBUG)
    before = lamini_lm.generate(student, INSTRUCTIONS, max_new_tokens=8)
    assert any(before), "the comparison below needs non-empty generations"
    repo_id = f"fake-user/lamini-{student.name}"
    info = publish(student, repo_id, base_model="google/flan-t5-small", datasets=["MBZUAI/LaMini-instruction"])

    assert fake_hub.hub.commits(repo_id) == ["initial commit", f"Upload lamini-{student.name} with lamini-lm"]
    files = fake_hub.hub.files(repo_id)
    assert {"README.md", "config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= set(files)
    assert files["model.safetensors"] == (student / "model.safetensors").read_bytes()
    assert info.oid in info.commit_url

    # Plain transformers, from the endpoint only (a fresh cache), with the Auto class the family calls for.
    seq2seq = AutoConfig.from_pretrained(repo_id).is_encoder_decoder
    auto = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    model = auto.from_pretrained(repo_id)
    assert lamini_lm.generate(model, INSTRUCTIONS, max_new_tokens=8) == before
    assert lamini_lm.generate(repo_id, INSTRUCTIONS, max_new_tokens=8) == before

    # The token never reaches the card, the pushed files or the logs.
    assert all(fake_hub.token.encode() not in data for data in files.values())
    assert fake_hub.token not in caplog.text


def test_no_token_is_a_clear_error(tiny_t5, tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with pytest.raises(PublishError, match="no Hugging Face token found: set HF_TOKEN"):
        publish(tiny_t5, "someone/model")


LM_EVAL_RESULTS = {
    "results": {
        "openbookqa": {"alias": "openbookqa", "acc,none": 0.31, "acc_stderr,none": 0.02, "acc_norm,none": 0.362},
        "sciq": {"acc,none": 0.88, "acc_norm,none": 0.842},
        "rte": {"acc,none": 0.55},
    }
}


ROWS = [
    {"instruction": "Name a fruit that is red.", "response": "An apple is red."},
    {"instruction": "What colour is the sky?", "response": "The sky is blue."},
    {"instruction": "Give a word for happy.", "response": "Glad."},
]


def _train(student, tmp_path, **kw):
    """A real 3-step training run from the tiny model in ``student`` into ``student`` + "-trained", on a dataset
    artifact whose manifest names its teacher; returns the trained folder (with its training manifest)."""
    from datasets import Dataset
    from transformers import AutoConfig

    from lamini_lm.artifacts import Manifest
    from lamini_lm.train import load_recipe

    data = tmp_path / "data"
    if not data.exists():
        Dataset.from_list(ROWS * 4).save_to_disk(str(data))
        Manifest(stage="responses", teacher_models=["gpt-3.5-turbo"], rows=len(ROWS) * 4).save(data)
    family = "seq2seq" if AutoConfig.from_pretrained(student).is_encoder_decoder else "causal"
    out = student.parent / f"{student.name}-trained"
    args = dict(
        family=family,
        model_name_or_path=str(student),
        dataset_name=str(data),
        output_dir=str(out),
        max_steps=3,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=4,
        learning_rate=5e-4,
        eval_split_size=0,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
        seed=42,
        report_to="none",
        disable_tqdm=True,
    )
    load_recipe(**{**args, **kw}).train()
    return out


def test_model_card_is_right_the_first_time(student, tmp_path):
    from huggingface_hub import ModelCard, ModelCardData
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    from lamini_lm.artifacts import read_manifest

    # A base model saved by transformers 4 records its Hub id in config.json; the manifest takes it from there.
    config = json.loads((student / "config.json").read_text())
    (student / "config.json").write_text(json.dumps({**config, "_name_or_path": "google/flan-t5-small"}))
    family = "seq2seq" if AutoConfig.from_pretrained(student).is_encoder_decoder else "causal"
    trained = _train(student, tmp_path)
    manifest = read_manifest(trained)
    results = tmp_path / "results.json"
    results.write_text(json.dumps(LM_EVAL_RESULTS))
    card = build_model_card(
        trained, "someone/lamini-tiny-58K", eval_results=results, datasets=["MBZUAI/LaMini-instruction", "/local/x"]
    )
    text = str(card)

    meta = _card_meta(text)  # YAML parses
    assert meta["base_model"] == "google/flan-t5-small"
    assert meta["datasets"] == ["MBZUAI/LaMini-instruction"]  # a local path is not a Hub dataset id
    assert "`/local/x` (local)" in text  # but the text names it
    assert meta["license"] == "cc-by-nc-4.0" and meta["language"] == ["en"]
    assert meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == ("text2text-generation" if family == "seq2seq" else "text-generation")
    assert {"lamini-lm", "distillation", family} <= set(meta["tags"])
    # model-index: named after this repository, non-empty, each entry task + dataset + metric + value.
    [index] = meta["model-index"]
    assert index["name"] == "lamini-tiny-58K"
    parsed = ModelCardData(**meta).eval_results  # huggingface_hub's own parser of model-index
    by_task = {r.task_name: r for r in parsed}
    assert set(by_task) == {"OpenBookQA", "SciQ", "RTE"}
    assert (by_task["OpenBookQA"].metric_type, by_task["OpenBookQA"].metric_value) == ("acc_norm", 36.2)
    assert by_task["SciQ"].dataset_type == "allenai/sciq" and by_task["RTE"].metric_type == "acc"
    assert ModelCard(text).data.to_dict()["model-index"] == meta["model-index"]  # round-trips through ModelCard

    auto = AutoModelForSeq2SeqLM if family == "seq2seq" else AutoModelForCausalLM
    n = auto.from_pretrained(trained).num_parameters()
    assert manifest.extra["parameters"] == n
    assert f"{n:,}" in text and format_parameters(n) in text
    assert "learning_rate | 0.0005" in text and "effective_batch_size | 8" in text and "world_size | 1" in text
    assert ("max_source_length | 512" if family == "seq2seq" else "max_length | 512") in text
    assert "precision | fp32" in text and "seed | 42" in text and "steps | 3" in text
    assert f"train loss: {manifest.extra['train_loss']}" in text and "gpt-3.5-turbo" in text
    assert "(12 examples)" in text
    # (36.2 + 84.2 + 55.0) / 3, in percent, labelled with the tasks it covers; each task with the rows it scored
    assert "| **average of 3/15 tasks: " in text and "| | | **58.4667** | |" in text
    assert "transformers " in text and "arXiv:2304.14402" in text and "Single-turn only" in text
    assert ("### Response:" in text) == (family == "causal")


def test_card_without_results_has_no_empty_model_index(student):
    text = str(build_model_card(student, "someone/lamini-tiny"))
    meta = _card_meta(text)
    assert "model-index" not in meta and "Not evaluated yet" in text
    assert "base_model" not in meta  # nothing recorded: absent, never a wrong guess
    assert "**Parameters:** not recorded" in text and "**Training data:** not recorded" in text


def test_results_without_any_task_are_refused(tiny_t5, tmp_path):
    results = tmp_path / "empty.json"
    results.write_text(json.dumps({"results": {}}))
    with pytest.raises(PublishError, match="no task results"):
        build_model_card(tiny_t5, "someone/x", eval_results=results)


def test_size_in_name_that_disagrees_with_weights_warns(tiny_t5, tmp_path, caplog):
    student = shutil.copytree(tiny_t5, tmp_path / "t5")
    build_model_card(_train(student, tmp_path), "someone/lamini-t5-61M")
    assert "says 61M parameters but the weights hold" in caplog.text


@pytest.mark.integration
def test_usage_snippet_in_card_works_as_pasted(student, fake_hub):
    repo_id = f"fake-user/snippet-{student.name}"
    publish(student, repo_id)
    card = fake_hub.hub.files(repo_id)["README.md"].decode()
    [snippet] = re.findall(r"## How to use\n\n```python\n(.*?)```", card, flags=re.S)
    snippet = snippet.replace("max_new_tokens=128", "max_new_tokens=4")
    exec(compile(snippet, "card-snippet", "exec"), {})  # noqa: S102  # the user's copy-paste, verbatim


def test_cli_card_only_writes_readme(tiny_t5, tmp_path, capsys):
    from lamini_lm.cli import main

    student = tmp_path / "s"
    shutil.copytree(tiny_t5, student)
    assert main(["publish", str(student), "--repo_id", "someone/tiny", "--card_only"]) == 0
    assert _card_meta((student / "README.md").read_text())["pipeline_tag"] == "text2text-generation"
    assert capsys.readouterr().out.strip() == str(student / "README.md")


def test_cli_without_token_exits_2_with_message(tiny_t5, capsys, monkeypatch):
    from lamini_lm.cli import main

    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    assert main(["publish", str(tiny_t5), "--repo_id", "someone/tiny"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("lamini-lm publish: error: no Hugging Face token found")


def test_cli_missing_model_dir_is_one_line(tmp_path, capsys):
    from lamini_lm.cli import main

    assert main(["publish", str(tmp_path / "nope"), "--repo_id", "someone/tiny"]) == 2
    assert capsys.readouterr().err.strip() == f"lamini-lm publish: error: {tmp_path / 'nope'}: no such model folder"


def test_published_files_leave_checkpoints_and_trainer_state_out(tiny_t5, tmp_path):
    student = shutil.copytree(tiny_t5, tmp_path / "s")
    for rel in ["checkpoint-5/model.safetensors", "checkpoint-5/optimizer.pt", "adapter/adapter_model.safetensors"]:
        (student / rel).parent.mkdir(parents=True, exist_ok=True)
        (student / rel).write_bytes(b"x")
    for name in ["training_args.bin", "trainer_state.json", "optimizer.pt", "notes.txt", "lamini_lm.json"]:
        (student / name).write_bytes(b"{}")
    files = published_files(student)
    assert "model.safetensors" in files and "config.json" in files and "lamini_lm.json" in files
    assert not [f for f in files if "/" in f or f in ("training_args.bin", "trainer_state.json", "optimizer.pt")]
    assert "notes.txt" not in files
    with_checkpoints = published_files(student, include_checkpoints=True)
    assert {"checkpoint-5/model.safetensors", "checkpoint-5/optimizer.pt", "training_args.bin"} <= set(
        with_checkpoints
    )
    assert "adapter/adapter_model.safetensors" not in with_checkpoints


def test_evaluation_beside_the_student_is_found_and_others_are_not(tiny_t5, tmp_path):
    from lamini_lm.evaluation.harness import save_evaluation

    runs = tmp_path / "runs"
    student = shutil.copytree(tiny_t5, runs / "student")
    other = shutil.copytree(tiny_t5, runs / "other")
    assert find_eval_results(student) is None
    summary = {"model": str(student), "tasks": {"sciq": {"metric": "acc", "value": 0.5}}, "average": 0.5}
    save_evaluation(summary, runs / "other-eval", other)  # another model's evaluation, one level up
    assert find_eval_results(student) is None
    save_evaluation(summary, runs / "eval", student)
    assert find_eval_results(student) == (runs / "eval" / "results.json").resolve()
    assert find_eval_results(other) == (runs / "other-eval" / "results.json").resolve()


@pytest.mark.integration
def test_republishing_replaces_stale_weights_in_one_commit(tiny_t5, tmp_path, fake_hub):
    from huggingface_hub import HfApi

    student = tmp_path / "s"
    shutil.copytree(tiny_t5, student)
    publish(student, "fake-user/again")
    HfApi().upload_file(path_or_fileobj=b"\x00old", path_in_repo="pytorch_model.bin", repo_id="fake-user/again")
    publish(student, "fake-user/again", commit_message="second push")
    files = fake_hub.hub.files("fake-user/again")
    assert "pytorch_model.bin" not in files and "model.safetensors" in files and ".gitattributes" in files
    assert fake_hub.hub.commits("fake-user/again")[-1] == "second push"


def _entry(task, dataset="json", config=None, split="test"):
    from huggingface_hub import EvalResult

    return EvalResult(
        task_type="multiple-choice",
        task_name=task,
        dataset_type=dataset,
        dataset_name=task,
        dataset_config=config,
        dataset_split=split,
        metric_type="acc",
        metric_value=50.0,
    )


def test_local_tasks_stay_separate_entries_in_the_model_index():
    """Tasks on local JSON files all report dataset "json"; the Hub would merge them into one entry."""
    from huggingface_hub import ModelCardData

    entries = _one_entry_per_task([_entry("SciQ"), _entry("RTE")], "results.json")
    assert [e.dataset_type for e in entries] == ["json:SciQ", "json:RTE"]
    assert len(ModelCardData(model_name="x", eval_results=entries).to_dict()["model-index"][0]["results"]) == 2
    # The paper's GLUE tasks share a dataset but not a config: they stay apart untouched.
    glue = [_entry("SST-2", "nyu-mll/glue", "sst2"), _entry("RTE", "nyu-mll/glue", "rte")]
    assert _one_entry_per_task(glue, "r.json") == glue
    with pytest.raises(PublishError, match="share dataset 'nyu-mll/glue'"):
        _one_entry_per_task([_entry("A", "nyu-mll/glue", "x"), _entry("B", "nyu-mll/glue", "x")], "r.json")
